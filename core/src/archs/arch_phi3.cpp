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

// A float vector stored as a GGUF tensor (llama.cpp keeps LongRoPE's factors as rope_factors_*.weight).
std::vector<double> factorTensor(const TensorStore& store, const std::string& name, int64_t pairs) {
  at::Tensor t = store.get(name, {pairs}).to(at::kDouble).contiguous();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + pairs);
}

// llama.cpp's phi3: attn_qkv (rows q | k | v), ffn_up holding gate | up, a sliding window on every
// layer, and LongRoPE's factors as tensors with rope.scaling.original_context_length and attn_factor.
ModelConfig phi3ConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  ModelConfig c = decoderConfigFromGguf(meta, store, where);
  c.arch = "phi3";
  const bool longFactors = store.has("rope_factors_long.weight"), shortFactors = store.has("rope_factors_short.weight");
  if (longFactors != shortFactors) throw ConfigError(where + ": rope_factors_long.weight and rope_factors_short.weight come together");
  if (longFactors) {
    RopeScaling& r = c.rope_scaling;
    if (r.kind != RopeScalingKind::None) throw ConfigError(where + ": LongRoPE factors together with phi3.rope.scaling.type");
    r.kind = RopeScalingKind::LongRope;
    r.original_max_positions = require<int64_t>(meta, "phi3.rope.scaling.original_context_length", where);
    if (r.original_max_positions <= 0) throw ConfigError(where + ": phi3.rope.scaling.original_context_length must be positive");
    r.factor = static_cast<double>(c.n_ctx) / static_cast<double>(r.original_max_positions);
    const double fallback = r.factor <= 1.0 ? 1.0 : std::sqrt(1 + std::log(r.factor) / std::log(static_cast<double>(r.original_max_positions)));
    r.attention_factor = optional<double>(meta, "phi3.rope.scaling.attn_factor", fallback, where);
    const int64_t pairs = c.rotaryDim() / 2;
    r.long_factor = factorTensor(store, "rope_factors_long.weight", pairs);
    r.short_factor = factorTensor(store, "rope_factors_short.weight", pairs);
  }
  c.validate(where);
  return c;
}

ModelWeights phi3WeightsFromGguf(ModelConfig& c, const TensorStore& store) {
  DecoderNames n = ggufDecoderNames();
  if (store.has("blk.0.attn_qkv.weight")) n.q = n.k = n.v = "", n.qkv = "blk.{}.attn_qkv.weight";
  n.gate = n.up = "", n.gateUp = "blk.{}.ffn_up.weight";
  return loadDecoder(c, store, n);
}

}  // namespace

ArchSpec phi3Arch() { return {"phi3", {"phi3"}, {"phi3"}, phi3ConfigFromHf, phi3WeightsFromHf, phi3ConfigFromGguf, phi3WeightsFromGguf, phi3WeightsToHf}; }

}  // namespace headlab::arch
