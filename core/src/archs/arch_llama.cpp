// LLaMA family: RMSNorm, RoPE, SwiGLU, grouped-query attention; Mistral (sliding window) and
// Qwen2 (q/k/v biases) are the same graph with different flags.
#include "architectures.h"
#include "headlab/core/errors.h"

#include <cmath>

namespace headlab::arch {

namespace {
// Keys of LLaMA-family configs that would change the forward and that this reader does not implement.
const std::vector<MathsKey> kUnimplementedHfKeys = {
    {"mlp_bias", false, "biases in the gated MLP"},
    {"partial_rotary_factor", 1.0, "RoPE on part of each head"},
    {"attn_logit_softcapping", nullptr, "attention soft-capping"},
    {"final_logit_softcapping", nullptr, "logit soft-capping"},
    {"query_pre_attn_scalar", nullptr, "a query scale other than 1/sqrt(head_dim)"},
};
// LongRoPE (Phi-3 128K): per-pair divisors, short within the original context, long beyond it. With
// a top-level original_max_position_embeddings (Phi-3's), the factor is max / original, as
// transformers' _compute_longrope_parameters reads it; else rope_scaling's factor over the whole context.
void longRopeFromHf(const nlohmann::json& cfg, const nlohmann::json& s, RopeScaling& r, int64_t maxPositions, const std::string& w) {
  r.kind = RopeScalingKind::LongRope;
  r.short_factor = require<std::vector<double>>(s, "short_factor", w);
  r.long_factor = require<std::vector<double>>(s, "long_factor", w);
  if (cfg.contains("original_max_position_embeddings") && !cfg["original_max_position_embeddings"].is_null()) {
    r.original_max_positions = require<int64_t>(cfg, "original_max_position_embeddings", w);
    if (r.original_max_positions <= 0) throw ConfigError(w + ": original_max_position_embeddings must be positive");
    r.factor = static_cast<double>(maxPositions) / static_cast<double>(r.original_max_positions);
  } else {
    r.original_max_positions = maxPositions;
    r.factor = require<double>(s, "factor", w);
  }
  const double fallback = r.factor <= 1.0 ? 1.0 : std::sqrt(1 + std::log(r.factor) / std::log(static_cast<double>(r.original_max_positions)));
  r.attention_factor = optional<double>(s, "attention_factor", fallback, w);
}
}  // namespace

ModelConfig llamaConfigFromHf(const nlohmann::json& cfg, const std::string& where) {
  ModelConfig c = decoderConfigFromHf(cfg, where);
  refuseUnimplemented(cfg, kUnimplementedHfKeys, where);
  if (c.arch == "mistral") c.sliding_window = optional<int64_t>(cfg, "sliding_window", 0, where);
  if (c.arch == "qwen2" && optional<bool>(cfg, "use_sliding_window", false, where)) {
    // Qwen2 slides its window only in layers from max_window_layers on (modeling_qwen2).
    c.sliding_window = optional<int64_t>(cfg, "sliding_window", 0, where);
    const int64_t from = optional<int64_t>(cfg, "max_window_layers", 28, where);
    for (int64_t l = 0; l < c.n_layers; ++l) c.sliding_layers.push_back(l >= from);
  }
  std::string act = optional<std::string>(cfg, "hidden_act", "silu", where);
  if (act != "silu") throw ConfigError(where + ": hidden_act '" + act + "' unsupported for " + c.arch + " (expected silu)");
  c.validate(where);
  return c;
}

ModelWeights llamaWeightsFromHf(ModelConfig& c, const TensorStore& store) { return loadDecoder(c, store, hfDecoderNames()); }
TensorMap llamaWeightsToHf(const ModelConfig&, const ModelWeights& w) { return decoderTensors(w, hfDecoderNames()); }

ModelConfig llamaConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  ModelConfig c = decoderConfigFromGguf(meta, store, where);
  // llama.cpp permutes llama q/k rows to interleaved pairs; qwen2 keeps Hugging Face's halves.
  c.rope = c.arch == "qwen2" ? RopeLayout::RotateHalf : RopeLayout::Interleaved;
  c.validate(where);
  return c;
}

ModelConfig llamaConfigFromLlama2c(const Llama2cHeader& h) {
  ModelConfig c;
  c.arch = "llama";
  c.d_model = h.dim;
  c.d_mlp = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.d_head = h.dim / h.n_heads;
  c.d_vocab = h.vocab_size;
  c.n_ctx = h.seq_len;
  c.norm = NormKind::RmsNorm;
  c.norm_eps = 1e-5;
  c.rope = RopeLayout::Interleaved;
  c.tied_embeddings = h.shared_classifier;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.validate("llama2.c header");
  return c;
}

ModelWeights llamaWeightsFromGguf(ModelConfig& c, const TensorStore& store) { return loadDecoder(c, store, ggufDecoderNames()); }

void readRopeScalingFromHf(const nlohmann::json& cfg, ModelConfig& c, const std::string& where) {
  RopeScaling& r = c.rope_scaling;
  r = RopeScaling{};
  if (!cfg.contains("rope_scaling") || cfg["rope_scaling"].is_null()) return;
  const nlohmann::json& s = cfg["rope_scaling"];
  const std::string w = where + " rope_scaling";
  if (!s.is_object()) throw ConfigError(w + ": expected an object or null, got " + s.type_name());
  // transformers reads rope_type, and type in older configs; Phi-3's first long-context configs say "su".
  std::string type = s.contains("rope_type") ? require<std::string>(s, "rope_type", w) : require<std::string>(s, "type", w);
  if (type == "su") type = "longrope";
  if (type == "default") return;
  if (type != "linear" && type != "llama3" && type != "yarn" && type != "dynamic" && type != "longrope")
    throw ConfigError(w + ": rope_type '" + type +
                      "' is not implemented (implemented: default, linear, llama3, yarn, dynamic, longrope); refusing rather than computing other positions");
  const int64_t maxPositions = c.n_ctx;
  if (type == "longrope") {
    longRopeFromHf(cfg, s, r, maxPositions, w);
    return;
  }
  r.factor = require<double>(s, "factor", w);
  if (type == "linear") {
    r.kind = RopeScalingKind::Linear;
  } else if (type == "llama3") {
    r.kind = RopeScalingKind::Llama3;
    r.low_freq_factor = require<double>(s, "low_freq_factor", w);
    r.high_freq_factor = require<double>(s, "high_freq_factor", w);
    r.original_max_positions = require<int64_t>(s, "original_max_position_embeddings", w);
  } else if (type == "dynamic") {
    // transformers scales from max_position_embeddings (not rope_scaling's original_max_position_embeddings)
    // and sets no limit on the length; HeadLab allows factor times the trained context, as vLLM does.
    r.kind = RopeScalingKind::Dynamic;
    r.original_max_positions = maxPositions;
    const double widened = static_cast<double>(maxPositions) * r.factor;
    if (!(widened <= static_cast<double>(int64_t{1} << 24)))
      throw ConfigError(w + ": max_position_embeddings " + std::to_string(maxPositions) + " times factor " + std::to_string(r.factor) +
                        " is not a context between 1 and 16777216");
    if (r.factor >= 1) c.n_ctx = static_cast<int64_t>(std::floor(widened));
  } else {
    r.kind = RopeScalingKind::Yarn;
    refuseUnimplemented(s, {{"mscale", nullptr, "DeepSeek's mscale"}, {"mscale_all_dim", nullptr, "DeepSeek's mscale"},
                            {"truncate", true, "an untruncated correction range"}}, w);
    r.original_max_positions = optional<int64_t>(s, "original_max_position_embeddings", maxPositions, w);
    r.beta_fast = optional<double>(s, "beta_fast", 32.0, w);
    r.beta_slow = optional<double>(s, "beta_slow", 1.0, w);
    // YaRN's attention temperature: 0.1 ln(s) + 1 unless the config gives it.
    r.attention_factor = optional<double>(s, "attention_factor", r.factor > 1 ? 0.1 * std::log(r.factor) + 1.0 : 1.0, w);
  }
}

ArchSpec llamaArch() {
  return {"llama", {"llama", "mistral", "qwen2"}, {"llama", "mistral", "qwen2"}, llamaConfigFromHf, llamaWeightsFromHf, llamaConfigFromGguf,
          llamaWeightsFromGguf, llamaWeightsToHf};
}

}  // namespace headlab::arch
