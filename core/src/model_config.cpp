#include "headlab/core/model_config.h"

#include <nlohmann/json.hpp>

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
}

int64_t ModelConfig::paramCount() const {
  int64_t attn = d_model * n_heads * d_head * 2 + d_model * n_kv_heads * d_head * 2;
  int64_t mlp = d_model * d_mlp * (gated_mlp ? 3 : 2);
  int64_t norms = d_model * (norm == NormKind::LayerNorm ? 4 : 2);
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
  return {{"arch", c.arch},
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
}

}  // namespace headlab
