// Qwen3: the LLaMA graph with a per-head RMSNorm of q and k before RoPE, a head_dim decoupled from
// hidden_size / heads, and optional q/k/v/o biases (attention_bias); sliding layers from layer_types
// or max_window_layers (modeling_qwen3).
#include "architectures.h"

namespace headlab::arch {

namespace {
ModelConfig qwen3ConfigFromHf(const nlohmann::json& cfg, const std::string& where) {
  ModelConfig c = decoderConfigFromHf(cfg, where);
  refuseUnimplemented(cfg, {{"mlp_bias", false, "biases in the gated MLP"}}, where);
  c.qk_norm = QkNorm::PerHead;
  c.act = activationFromHf(optional<std::string>(cfg, "hidden_act", "silu", where), where);
  if (optional<bool>(cfg, "use_sliding_window", false, where)) {
    c.sliding_window = optional<int64_t>(cfg, "sliding_window", 0, where);
    c.sliding_layers = slidingLayersFromHf(cfg, c.n_layers, where);
    if (c.sliding_layers.empty()) {
      const int64_t from = optional<int64_t>(cfg, "max_window_layers", c.n_layers, where);
      for (int64_t l = 0; l < c.n_layers; ++l) c.sliding_layers.push_back(l >= from);
    }
  }
  c.validate(where);
  return c;
}

// Qwen3's tensor names, read and written.
DecoderNames hfNames(const ModelConfig&) {
  DecoderNames n = hfDecoderNames();
  n.qNorm = "model.layers.{}.self_attn.q_norm.weight", n.kNorm = "model.layers.{}.self_attn.k_norm.weight";
  return n;
}

ModelWeights qwen3WeightsFromHf(ModelConfig& c, const TensorStore& store) { return loadDecoder(c, store, hfNames(c)); }
TensorMap qwen3WeightsToHf(const ModelConfig& c, const ModelWeights& w) { return decoderTensors(w, hfNames(c)); }

// llama.cpp's qwen3: its shared keys (key_length for the decoupled head_dim), attn_q_norm / attn_k_norm.
ModelConfig qwen3ConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  ModelConfig c = decoderConfigFromGguf(meta, store, where);
  c.arch = "qwen3";
  c.qk_norm = QkNorm::PerHead;
  c.validate(where);
  return c;
}
ModelWeights qwen3WeightsFromGguf(ModelConfig& c, const TensorStore& store) { return loadDecoder(c, store, ggufDecoderNames()); }

}  // namespace

ArchSpec qwen3Arch() {
  return {"qwen3", {"qwen3"}, {"qwen3"}, qwen3ConfigFromHf, qwen3WeightsFromHf, qwen3ConfigFromGguf, qwen3WeightsFromGguf, qwen3WeightsToHf};
}

}  // namespace headlab::arch
