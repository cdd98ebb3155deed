// Phi-3: the LLaMA graph with fused qkv_proj (rows q | k | v) and gate_up_proj (rows gate | up),
// partial rotary (partial_rotary_factor) and a sliding window on every layer (modeling_phi3).
#include <cmath>

#include "architectures.h"

namespace headlab::arch {

namespace {
ModelConfig phi3ConfigFromHf(const nlohmann::json& cfgIn, const std::string& where) {
  // Phi3Config always has original_max_position_embeddings (4096 unless given), which longrope reads.
  nlohmann::json cfg = cfgIn;
  if (!cfg.contains("original_max_position_embeddings") || cfg["original_max_position_embeddings"].is_null())
    cfg["original_max_position_embeddings"] = 4096;
  ModelConfig c = decoderConfigFromHf(cfg, where);
  refuseUnimplemented(cfg, {{"attention_bias", false, "attention biases"}}, where);
  c.act = activationFromHf(optional<std::string>(cfg, "hidden_act", "silu", where), where);
  const double partial = optional<double>(cfg, "partial_rotary_factor", 1.0, where);
  c.rotary_dim = static_cast<int64_t>(std::floor(static_cast<double>(c.d_head) * partial));
  c.sliding_window = optional<int64_t>(cfg, "sliding_window", 0, where);
  c.validate(where);
  return c;
}

// Phi-3's tensor names, read and written.
DecoderNames hfNames(const ModelConfig&) {
  DecoderNames n = hfDecoderNames();
  n.q = n.k = n.v = n.gate = n.up = "";
  n.qkv = "model.layers.{}.self_attn.qkv_proj.weight", n.gateUp = "model.layers.{}.mlp.gate_up_proj.weight";
  return n;
}

ModelWeights phi3WeightsFromHf(ModelConfig& c, const TensorStore& store) { return loadDecoder(c, store, hfNames(c)); }
TensorMap phi3WeightsToHf(const ModelConfig& c, const ModelWeights& w) { return decoderTensors(w, hfNames(c)); }

}  // namespace

ArchSpec phi3Arch() { return {"phi3", {"phi3"}, {}, phi3ConfigFromHf, phi3WeightsFromHf, nullptr, nullptr, phi3WeightsToHf}; }

}  // namespace headlab::arch
