// OLMo-2: no pre-norms; RMSNorm of the attention and MLP outputs before each residual add
// (post_attention_layernorm, post_feedforward_layernorm), and RMSNorm of the whole q and k
// projections before they are split into heads (modeling_olmo2).
#include "architectures.h"

namespace headlab::arch {

namespace {
ModelConfig olmo2ConfigFromHf(const nlohmann::json& cfg, const std::string& where) {
  ModelConfig c = decoderConfigFromHf(cfg, where);
  refuseUnimplemented(cfg, {{"mlp_bias", false, "biases in the gated MLP"}, {"clip_qkv", nullptr, "clipping of q, k and v"}}, where);
  c.pre_norms = false;
  c.post_norms = true;
  c.qk_norm = QkNorm::Projection;
  c.act = activationFromHf(optional<std::string>(cfg, "hidden_act", "silu", where), where);
  c.validate(where);
  return c;
}

// OLMo-2's tensor names, read and written.
DecoderNames hfNames(const ModelConfig&) {
  DecoderNames n = hfDecoderNames();
  n.ln1 = n.ln2 = "";
  n.attnPost = "model.layers.{}.post_attention_layernorm.weight", n.mlpPost = "model.layers.{}.post_feedforward_layernorm.weight";
  n.qNorm = "model.layers.{}.self_attn.q_norm.weight", n.kNorm = "model.layers.{}.self_attn.k_norm.weight";
  return n;
}

ModelWeights olmo2WeightsFromHf(ModelConfig& c, const TensorStore& store) { return loadDecoder(c, store, hfNames(c)); }
TensorMap olmo2WeightsToHf(const ModelConfig& c, const ModelWeights& w) { return decoderTensors(w, hfNames(c)); }

// llama.cpp's olmo2: no attn_norm / ffn_norm, post_attention_norm and post_ffw_norm, q/k norms over
// the projection. Its sliding-window keys belong to OLMo-3, which is not implemented.
ModelConfig olmo2ConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  ModelConfig c = decoderConfigFromGguf(meta, store, where);
  if (c.sliding_window > 0 || meta.contains("olmo2.attention.sliding_window_pattern"))
    throw ConfigError(where + ": olmo2.attention.sliding_window (OLMo-3's sliding layers) is not implemented");
  c.arch = "olmo2";
  c.pre_norms = false;
  c.post_norms = true;
  c.qk_norm = QkNorm::Projection;
  c.validate(where);
  return c;
}
ModelWeights olmo2WeightsFromGguf(ModelConfig& c, const TensorStore& store) { return loadDecoder(c, store, ggufDecoderNames()); }

}  // namespace

ArchSpec olmo2Arch() {
  return {"olmo2", {"olmo2"}, {"olmo2"}, olmo2ConfigFromHf, olmo2WeightsFromHf, olmo2ConfigFromGguf, olmo2WeightsFromGguf, olmo2WeightsToHf};
}

}  // namespace headlab::arch
