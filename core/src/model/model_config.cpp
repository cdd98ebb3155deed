#include "headlab/core/model_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "headlab/core/errors.h"

namespace headlab {

void ModelConfig::validate(const std::string& where) const {
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) throw ConfigError(where + ": " + what);
  };
  require(n_layers > 0 && n_layers < 100000, "n_layers must be positive, got " + std::to_string(n_layers));
  require(n_heads > 0 && n_heads < 100000, "n_heads must be positive, got " + std::to_string(n_heads));
  require(n_kv_heads > 0, "n_kv_heads must be positive, got " + std::to_string(n_kv_heads));
  require(n_heads % n_kv_heads == 0, "n_heads (" + std::to_string(n_heads) +
                                         ") must be a multiple of n_kv_heads (" +
                                         std::to_string(n_kv_heads) + ")");
  require(d_model > 0 && d_model < (1 << 20), "d_model must be positive, got " + std::to_string(d_model));
  require(d_head > 0 && d_head < (1 << 16), "d_head must be positive, got " + std::to_string(d_head));
  require(d_mlp > 0 && d_mlp < (1 << 24), "d_mlp must be positive, got " + std::to_string(d_mlp));
  require(d_vocab > 0 && d_vocab < (1 << 26), "d_vocab must be positive, got " + std::to_string(d_vocab));
  require(n_ctx > 0 && n_ctx <= (int64_t{1} << 24),
          "n_ctx (max_position_embeddings) must be between 1 and 16777216, got " + std::to_string(n_ctx));
  if (rope != RopeLayout::None) {
    require(rotaryDim() % 2 == 0 && rotaryDim() <= d_head,
            "rotary dimension must be even and <= d_head, got " + std::to_string(rotaryDim()));
  }
  if (rope_scaling.kind != RopeScalingKind::None) {
    require(rope_scaling.factor > 0 && std::isfinite(rope_scaling.factor),
            "rope_scaling.factor must be positive, got " + std::to_string(rope_scaling.factor));
    require(rope_scaling.kind != RopeScalingKind::Llama3 || rope_scaling.high_freq_factor > rope_scaling.low_freq_factor,
            "rope_scaling.high_freq_factor must exceed low_freq_factor");
    require(rope_scaling.kind == RopeScalingKind::Linear || rope_scaling.original_max_positions > 0,
            "rope_scaling.original_max_position_embeddings must be positive");
    if (rope_scaling.kind == RopeScalingKind::LongRope) {
      const size_t pairs = static_cast<size_t>(rotaryDim() / 2);
      require(rope_scaling.short_factor.size() == pairs && rope_scaling.long_factor.size() == pairs,
              "rope_scaling short_factor and long_factor need one entry per rotary pair (" + std::to_string(pairs) + "), got " +
                  std::to_string(rope_scaling.short_factor.size()) + " and " + std::to_string(rope_scaling.long_factor.size()));
      for (const auto* list : {&rope_scaling.short_factor, &rope_scaling.long_factor})
        for (double f : *list) require(f > 0 && std::isfinite(f), "rope_scaling short_factor and long_factor must be positive and finite");
    }
    require(rope_scaling.kind != RopeScalingKind::Dynamic || rotaryDim() > 2, "dynamic rope_scaling needs a rotary dimension above 2");
    require(rope_scaling.attention_factor > 0 && std::isfinite(rope_scaling.attention_factor),
            "rope_scaling attention factor must be positive and finite, got " + std::to_string(rope_scaling.attention_factor));
  }
  require(sliding_window >= 0, "sliding_window must be >= 0, got " + std::to_string(sliding_window));
  require(sliding_layers.empty() || static_cast<int64_t>(sliding_layers.size()) == n_layers,
          "sliding layer list has " + std::to_string(sliding_layers.size()) + " entries for " + std::to_string(n_layers) + " layers");
  require(pre_norms || post_norms, "a model needs pre-norms or post-norms");
  require(attn_softcap >= 0 && final_softcap >= 0 && attn_scale >= 0, "soft-caps and the attention scale must be >= 0");
}

std::vector<float> ropeInverseFrequencies(const ModelConfig& c, bool local, int64_t length) {
  const int64_t half = c.rotaryDim() / 2;
  const bool ownLocal = local && c.rope_local_theta > 0;
  const RopeScaling s = ownLocal ? RopeScaling{} : c.rope_scaling;
  const bool beyondOriginal = s.dependsOnLength() && length > s.original_max_positions;
  double base = ownLocal ? c.rope_local_theta : c.rope_theta;
  if (s.kind == RopeScalingKind::Dynamic && beyondOriginal) {
    // NTK-aware: the base grows with the length covered (transformers' _compute_dynamic_ntk_parameters).
    const double dim = static_cast<double>(2 * half);
    base *= std::pow(s.factor * static_cast<double>(length) / static_cast<double>(s.original_max_positions) - (s.factor - 1), dim / (dim - 2));
  }
  const float theta = static_cast<float>(base);
  const float factor = static_cast<float>(s.factor);
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i)
    inv[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(2 * half));
  switch (s.kind) {
    case RopeScalingKind::None: break;
    case RopeScalingKind::Dynamic: break;  // the base above
    case RopeScalingKind::LongRope: {
      const std::vector<double>& ext = beyondOriginal ? s.long_factor : s.short_factor;
      for (int64_t i = 0; i < half; ++i)
        inv[i] = 1.0f / (static_cast<float>(ext[i]) * std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(2 * half)));
      break;
    }
    case RopeScalingKind::Linear:
      for (float& f : inv) f /= factor;
      break;
    case RopeScalingKind::Llama3: {
      const double old = static_cast<double>(s.original_max_positions);
      const double lowWavelen = old / s.low_freq_factor, highWavelen = old / s.high_freq_factor;
      for (float& f : inv) {
        const double wavelen = 2 * M_PI / f;
        if (wavelen < highWavelen) continue;  // high frequency: unchanged
        if (wavelen > lowWavelen) {
          f /= factor;  // low frequency: interpolated
          continue;
        }
        const float smooth = static_cast<float>((old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor));
        f = (1 - smooth) * f / factor + smooth * f;
      }
      break;
    }
    case RopeScalingKind::Yarn: {
      // Rotary pairs that turn more than beta_fast times over the original context keep their
      // frequency, fewer than beta_slow are divided by the factor, a linear ramp in between.
      const double dim = static_cast<double>(2 * half), base = c.rope_theta, old = static_cast<double>(s.original_max_positions);
      auto correctionDim = [&](double rotations) { return dim * std::log(old / (rotations * 2 * M_PI)) / (2 * std::log(base)); };
      double low = std::max(std::floor(correctionDim(s.beta_fast)), 0.0);
      double high = std::min(std::ceil(correctionDim(s.beta_slow)), dim - 1);
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < half; ++i) {
        const float ramp = static_cast<float>(std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0));
        const float keep = 1 - ramp;
        inv[i] = inv[i] / factor * (1 - keep) + inv[i] * keep;
      }
      break;
    }
  }
  return inv;
}

int64_t ModelConfig::paramCount() const {
  int64_t attn = d_model * n_heads * d_head * 2 + d_model * n_kv_heads * d_head * 2;
  int64_t mlp = d_model * d_mlp * (gated_mlp ? 3 : 2);
  int64_t norms = (pre_norms ? d_model * (norm == NormKind::LayerNorm ? 4 : 2) : 0) + (post_norms ? 2 * d_model : 0);
  if (qk_norm == QkNorm::PerHead) norms += 2 * d_head;
  if (qk_norm == QkNorm::Projection) norms += (n_heads + n_kv_heads) * d_head;
  int64_t total = n_layers * (attn + mlp + norms) + d_vocab * d_model;
  if (!tied_embeddings) total += d_vocab * d_model;
  if (learned_pos) total += n_ctx * d_model;
  total += d_model * (norm == NormKind::LayerNorm ? 2 : 1);
  return total;
}

const char* toString(RopeLayout r) {
  switch (r) {
    case RopeLayout::None: return "none";
    case RopeLayout::Interleaved: return "interleaved";
    case RopeLayout::RotateHalf: return "rotate_half";
  }
  return "?";
}

const char* toString(RopeScalingKind k) {
  switch (k) {
    case RopeScalingKind::None: return "none";
    case RopeScalingKind::Linear: return "linear";
    case RopeScalingKind::Llama3: return "llama3";
    case RopeScalingKind::Yarn: return "yarn";
    case RopeScalingKind::Dynamic: return "dynamic";
    case RopeScalingKind::LongRope: return "longrope";
  }
  return "?";
}

const char* toString(Activation a) {
  switch (a) {
    case Activation::GeluNew: return "gelu_new";
    case Activation::Gelu: return "gelu";
    case Activation::Silu: return "silu";
    case Activation::Relu: return "relu";
    case Activation::QuickGelu: return "quick_gelu";
  }
  return "?";
}

nlohmann::json configToJson(const ModelConfig& c) {
  nlohmann::json j = {{"arch", c.arch},
          {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"d_model", c.d_model},
          {"d_head", c.d_head},
          {"d_mlp", c.d_mlp},
          {"d_vocab", c.d_vocab},
          {"n_ctx", c.n_ctx},
          {"n_params", c.paramCount()},
          {"norm", c.norm == NormKind::LayerNorm ? "layernorm" : "rmsnorm"},
          {"act", toString(c.act)},
          {"rope", toString(c.rope)},
          {"rope_theta", c.rope_theta},
          {"sliding_window", c.sliding_window},
          {"tied_embeddings", c.tied_embeddings}};
  // Keys that only appear when they apply, so configs without them print as before.
  if (c.rope_scaling.kind != RopeScalingKind::None)
    j["rope_scaling"] = {{"type", toString(c.rope_scaling.kind)}, {"factor", c.rope_scaling.factor}};
  if (c.rope_scaling.dependsOnLength()) j["rope_scaling"]["original_max_position_embeddings"] = c.rope_scaling.original_max_positions;
  if (c.sliding_window > 0 && !c.sliding_layers.empty()) {
    std::vector<int64_t> layers;
    for (int64_t l = 0; l < c.n_layers; ++l)
      if (c.slidingWindowAt(l) > 0) layers.push_back(l);
    j["sliding_layers"] = layers;
  }
  if (c.qk_norm != QkNorm::None) j["qk_norm"] = c.qk_norm == QkNorm::PerHead ? "per_head" : "projection";
  if (c.attn_softcap > 0) j["attn_softcap"] = c.attn_softcap;
  if (c.final_softcap > 0) j["final_softcap"] = c.final_softcap;
  if (c.parallel_residual) j["parallel_residual"] = true;
  if (c.rope_local_theta > 0) j["rope_local_theta"] = c.rope_local_theta;
  if (c.rope != RopeLayout::None && c.rotaryDim() != c.d_head) j["rotary_dim"] = c.rotaryDim();
  if (c.attn_scale > 0) j["attn_scale"] = c.attn_scale;
  if (c.embed_scale != 1.0) j["embed_scale"] = c.embed_scale;
  if (c.norm_weight_offset != 0) j["norm_weight_offset"] = c.norm_weight_offset;
  if (c.post_norms) j["post_norms"] = true;
  return j;
}

}  // namespace headlab
