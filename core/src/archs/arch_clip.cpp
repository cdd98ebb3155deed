// CLIP's ViT tower as LLaVA reads it (modeling_clip): a non-causal pre-LN encoder over a class token
// and the image patches, with learned positions and quick-GELU; and LLaVA-1.5's two-layer GELU
// projector and feature selection (modeling_llava).
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

ModelWeights clipWeightsFromHf(const TensorStore& store, const std::string& vp, const ModelConfig& enc, const VisionTowerConfig& v,
                               VisionLanguageModel::Embeddings& e) {
  const int64_t Dv = enc.d_model, Fv = enc.d_mlp, N = v.patches();
  e.patch = store.get(vp + "embeddings.patch_embedding.weight", {Dv, v.channels, v.patch_size, v.patch_size}).reshape({Dv, -1});
  e.class_token = store.get(vp + "embeddings.class_embedding", {Dv});
  e.positions = store.get(vp + "embeddings.position_embedding.weight", {N + 1, Dv});
  e.pre_ln_w = store.get(vp + "pre_layrnorm.weight", {Dv});
  e.pre_ln_b = store.get(vp + "pre_layrnorm.bias", {Dv});
  ModelWeights vw;
  // The tower has no token embedding or unembedding (LLaVA reads a hidden state, not logits):
  // placeholders that only fix device and dtype.
  vw.embed = at::zeros({1, Dv});
  vw.unembed = vw.embed;
  vw.lnf_w = store.has(vp + "post_layernorm.weight") ? store.get(vp + "post_layernorm.weight", {Dv}) : at::ones({Dv});
  vw.lnf_b = store.has(vp + "post_layernorm.bias") ? store.get(vp + "post_layernorm.bias", {Dv}) : at::zeros({Dv});
  for (int64_t l = 0; l < enc.n_layers; ++l) {
    const std::string p = vp + "encoder.layers." + std::to_string(l) + ".";
    LayerWeights L;
    L.ln1_w = store.get(p + "layer_norm1.weight", {Dv}), L.ln1_b = store.get(p + "layer_norm1.bias", {Dv});
    L.wq = store.get(p + "self_attn.q_proj.weight", {Dv, Dv}), L.bq = store.get(p + "self_attn.q_proj.bias", {Dv});
    L.wk = store.get(p + "self_attn.k_proj.weight", {Dv, Dv}), L.bk = store.get(p + "self_attn.k_proj.bias", {Dv});
    L.wv = store.get(p + "self_attn.v_proj.weight", {Dv, Dv}), L.bv = store.get(p + "self_attn.v_proj.bias", {Dv});
    L.wo = store.get(p + "self_attn.out_proj.weight", {Dv, Dv}), L.bo = store.get(p + "self_attn.out_proj.bias", {Dv});
    L.ln2_w = store.get(p + "layer_norm2.weight", {Dv}), L.ln2_b = store.get(p + "layer_norm2.bias", {Dv});
    L.w_in = store.get(p + "mlp.fc1.weight", {Fv, Dv}), L.b_in = store.get(p + "mlp.fc1.bias", {Fv});
    L.w_out = store.get(p + "mlp.fc2.weight", {Dv, Fv}), L.b_out = store.get(p + "mlp.fc2.bias", {Dv});
    vw.layers.push_back(std::move(L));
  }
  return vw;
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

VisionLanguageModel::Projector llavaProjectorFromHf(const TensorStore& store, const std::string& pp, int64_t D, int64_t Dv) {
  VisionLanguageModel::Projector pr;
  pr.w1 = store.get(pp + "linear_1.weight", {D, Dv}), pr.b1 = store.get(pp + "linear_1.bias", {D});
  pr.w2 = store.get(pp + "linear_2.weight", {D, D}), pr.b2 = store.get(pp + "linear_2.bias", {D});
  return pr;
}

}  // namespace headlab::arch
