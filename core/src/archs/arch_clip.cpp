// CLIP's ViT tower as LLaVA reads it (modeling_clip): a non-causal pre-LN encoder over a class token
// and the image patches, with learned positions and quick-GELU; and LLaVA-1.5's two-layer GELU
// projector and feature selection (modeling_llava).
#include <ATen/ATen.h>

#include "architectures.h"

namespace headlab::arch {

ModelConfig clipConfigFromHf(const nlohmann::json& vc, VisionTowerConfig& v, const std::string& where) {
  v.image_size = require<int64_t>(vc, "image_size", where);
  v.patch_size = require<int64_t>(vc, "patch_size", where);
  v.channels = optional<int64_t>(vc, "num_channels", 3, where);
  if (v.patch_size <= 0 || v.image_size % v.patch_size != 0)
    throw ConfigError(where + ": image_size " + std::to_string(v.image_size) + " is not a multiple of patch_size " + std::to_string(v.patch_size));
  ModelConfig enc;
  enc.arch = "clip_vision";
  readSizes(vc, {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"}, enc, where);
  enc.d_vocab = 1;
  enc.n_ctx = v.patches() + 1;
  enc.norm = NormKind::LayerNorm;
  enc.norm_eps = optional<double>(vc, "layer_norm_eps", 1e-5, where);
  const std::string act = optional<std::string>(vc, "hidden_act", "quick_gelu", where);
  if (act == "quick_gelu") enc.act = Activation::QuickGelu;
  else if (act == "gelu") enc.act = Activation::Gelu;
  else throw ConfigError(where + ": hidden_act '" + act + "' unsupported (expected quick_gelu or gelu)");
  enc.gated_mlp = false, enc.causal = false, enc.rope = RopeLayout::None;
  enc.validate(where);
  return enc;
}

namespace {
// CLIPEncoderLayer's tensors after "encoder.layers.{l}.", read and written from here.
const std::vector<LayerTensorName> kClipLayer = {
    {"layer_norm1.weight", &LayerWeights::ln1_w, 'D', 0},         {"layer_norm1.bias", &LayerWeights::ln1_b, 'D', 0},
    {"self_attn.q_proj.weight", &LayerWeights::wq, 'D', 'D'},     {"self_attn.q_proj.bias", &LayerWeights::bq, 'D', 0},
    {"self_attn.k_proj.weight", &LayerWeights::wk, 'D', 'D'},     {"self_attn.k_proj.bias", &LayerWeights::bk, 'D', 0},
    {"self_attn.v_proj.weight", &LayerWeights::wv, 'D', 'D'},     {"self_attn.v_proj.bias", &LayerWeights::bv, 'D', 0},
    {"self_attn.out_proj.weight", &LayerWeights::wo, 'D', 'D'},   {"self_attn.out_proj.bias", &LayerWeights::bo, 'D', 0},
    {"layer_norm2.weight", &LayerWeights::ln2_w, 'D', 0},         {"layer_norm2.bias", &LayerWeights::ln2_b, 'D', 0},
    {"mlp.fc1.weight", &LayerWeights::w_in, 'F', 'D'},            {"mlp.fc1.bias", &LayerWeights::b_in, 'F', 0},
    {"mlp.fc2.weight", &LayerWeights::w_out, 'D', 'F'},           {"mlp.fc2.bias", &LayerWeights::b_out, 'D', 0},
};
const char* const kPatch = "embeddings.patch_embedding.weight";
const char* const kClass = "embeddings.class_embedding";
const char* const kPositions = "embeddings.position_embedding.weight";
const char* const kPreNormWeight = "pre_layrnorm.weight";  // sic: CLIP's own spelling
const char* const kPreNormBias = "pre_layrnorm.bias";
const char* const kPostNormWeight = "post_layernorm.weight";
const char* const kPostNormBias = "post_layernorm.bias";
std::string clipLayer(const std::string& prefix, int64_t l) { return prefix + "encoder.layers." + std::to_string(l) + "."; }
}  // namespace

ModelWeights clipWeightsFromHf(const TensorStore& store, const std::string& vp, const ModelConfig& enc, const VisionTowerConfig& v,
                               VisionLanguageModel::Embeddings& e) {
  const int64_t Dv = enc.d_model, Fv = enc.d_mlp, N = v.patches();
  e.patch = store.get(vp + kPatch, {Dv, v.channels, v.patch_size, v.patch_size}).reshape({Dv, -1});
  e.class_token = store.get(vp + kClass, {Dv});
  e.positions = store.get(vp + kPositions, {N + 1, Dv});
  e.pre_ln_w = store.get(vp + kPreNormWeight, {Dv});
  e.pre_ln_b = store.get(vp + kPreNormBias, {Dv});
  ModelWeights vw;
  // The tower has no token embedding or unembedding (LLaVA reads a hidden state, not logits):
  // placeholders that only fix device and dtype.
  vw.embed = at::zeros({1, Dv});
  vw.unembed = vw.embed;
  vw.lnf_w = store.has(vp + kPostNormWeight) ? store.get(vp + kPostNormWeight, {Dv}) : at::ones({Dv});
  vw.lnf_b = store.has(vp + kPostNormBias) ? store.get(vp + kPostNormBias, {Dv}) : at::zeros({Dv});
  for (int64_t l = 0; l < enc.n_layers; ++l) {
    LayerWeights L;
    readLayerTensors(L, store, clipLayer(vp, l), kClipLayer, Dv, Fv);
    vw.layers.push_back(std::move(L));
  }
  return vw;
}

void clipTensors(const ModelWeights& tower, const VisionLanguageModel::Embeddings& e, const VisionTowerConfig& v, const std::string& vp,
                 TensorMap& out) {
  out[vp + kPatch] = e.patch.reshape({e.patch.size(0), v.channels, v.patch_size, v.patch_size});
  out[vp + kClass] = e.class_token;
  out[vp + kPositions] = e.positions;
  out[vp + kPreNormWeight] = e.pre_ln_w, out[vp + kPreNormBias] = e.pre_ln_b;
  out[vp + kPostNormWeight] = tower.lnf_w, out[vp + kPostNormBias] = tower.lnf_b;
  for (int64_t l = 0; l < static_cast<int64_t>(tower.layers.size()); ++l)
    writeLayerTensors(tower.layers[l], clipLayer(vp, l), kClipLayer, out);
}

void llavaFeatureConfig(const nlohmann::json& cfg, const ModelConfig& enc, VisionTowerConfig& v, const std::string& where) {
  const int64_t featureLayer = optional<int64_t>(cfg, "vision_feature_layer", -2, where);
  v.feature_layers = featureLayer < 0 ? enc.n_layers + 1 + featureLayer : featureLayer;
  if (v.feature_layers < 0 || v.feature_layers > enc.n_layers)
    throw ConfigError(where + ": vision_feature_layer " + std::to_string(featureLayer) + " out of range for " + std::to_string(enc.n_layers) + " layers");
  const std::string strategy = optional<std::string>(cfg, "vision_feature_select_strategy", "default", where);
  if (strategy != "default" && strategy != "full")
    throw ConfigError(where + ": vision_feature_select_strategy '" + strategy + "' unsupported (expected default or full)");
  v.drop_class_token = strategy == "default";
  v.image_token_id = cfg.contains("image_token_index") ? require<int64_t>(cfg, "image_token_index", where) : require<int64_t>(cfg, "image_token_id", where);
  const std::string pact = optional<std::string>(cfg, "projector_hidden_act", "gelu", where);
  if (pact != "gelu") throw ConfigError(where + ": projector_hidden_act '" + pact + "' unsupported (expected gelu)");
}

namespace {
// LlavaMultiModalProjector: linear_1 [D, Dv], GELU, linear_2 [D, D].
const char* const kLinear1Weight = "linear_1.weight";
const char* const kLinear1Bias = "linear_1.bias";
const char* const kLinear2Weight = "linear_2.weight";
const char* const kLinear2Bias = "linear_2.bias";
}  // namespace

VisionLanguageModel::Projector llavaProjectorFromHf(const TensorStore& store, const std::string& pp, int64_t D, int64_t Dv) {
  VisionLanguageModel::Projector pr;
  pr.w1 = store.get(pp + kLinear1Weight, {D, Dv}), pr.b1 = store.get(pp + kLinear1Bias, {D});
  pr.w2 = store.get(pp + kLinear2Weight, {D, D}), pr.b2 = store.get(pp + kLinear2Bias, {D});
  return pr;
}

void llavaProjectorTensors(const VisionLanguageModel::Projector& pr, const std::string& pp, TensorMap& out) {
  out[pp + kLinear1Weight] = pr.w1, out[pp + kLinear1Bias] = pr.b1;
  out[pp + kLinear2Weight] = pr.w2, out[pp + kLinear2Bias] = pr.b2;
}

}  // namespace headlab::arch
