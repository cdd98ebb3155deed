// Gemma 1, 2 and 3 (text): RMSNorm scales stored as w and applied as 1 + w, embeddings times
// sqrt(hidden_size), GeGLU (tanh GELU), tied embeddings. Gemma 2 adds post-norms around attention
// and MLP, attention and final-logit soft-capping, query_pre_attn_scalar and sliding windows on
// even layers; Gemma 3 adds per-head q/k norms, drops soft-capping, and gives its sliding layers
// (five of six) their own RoPE base (modeling_gemma, modeling_gemma2, modeling_gemma3).
#include <cmath>

#include "architectures.h"

namespace headlab::arch {

namespace {
ModelConfig gemmaConfigFromHf(const nlohmann::json& cfg, const std::string& where) {
  ModelConfig c = decoderConfigFromHf(cfg, where);
  const int version = c.arch == "gemma" ? 1 : c.arch == "gemma2" ? 2 : 3;
  c.tied_embeddings = optional<bool>(cfg, "tie_word_embeddings", true, where);
  c.embed_scale = std::sqrt(static_cast<double>(c.d_model));
  c.norm_weight_offset = 1.0;  // Gemma's RMSNorm: x * (1 + w), with 1 + w in float32 whatever the dtype
  // transformers runs Gemma's MLP with the tanh GELU whatever hidden_act says, unless hidden_activation is given.
  c.act = activationFromHf(optional<std::string>(cfg, "hidden_activation", "gelu_pytorch_tanh", where), where);
  refuseUnimplemented(cfg, {{"attention_bias", false, "attention biases"}}, where);
  if (version == 1) {
    refuseUnimplemented(cfg, {{"attn_logit_softcapping", nullptr, "soft-capping in Gemma 1"}, {"final_logit_softcapping", nullptr, "soft-capping in Gemma 1"}}, where);
    c.validate(where);
    return c;
  }
  c.post_norms = true;
  c.attn_scale = 1.0 / std::sqrt(optional<double>(cfg, "query_pre_attn_scalar", static_cast<double>(c.d_head), where));
  c.attn_softcap = optional<double>(cfg, "attn_logit_softcapping", 0.0, where);
  c.final_softcap = optional<double>(cfg, "final_logit_softcapping", 0.0, where);
  c.sliding_window = optional<int64_t>(cfg, "sliding_window", 0, where);
  c.sliding_layers = slidingLayersFromHf(cfg, c.n_layers, where);
  if (version == 3) {
    c.qk_norm = QkNorm::PerHead;
    c.rope_local_theta = optional<double>(cfg, "rope_local_base_freq", 10000.0, where);
  }
  if (c.sliding_layers.empty()) {
    // Gemma 2 slides on even layers; Gemma 3 on all but every sliding_window_pattern-th.
    const int64_t pattern = version == 3 ? optional<int64_t>(cfg, "sliding_window_pattern", 6, where) : 2;
    for (int64_t l = 0; l < c.n_layers; ++l) c.sliding_layers.push_back(version == 2 ? l % 2 == 0 : (l + 1) % pattern != 0);
  }
  c.validate(where);
  return c;
}

// Gemma's tensor names, read and written.
DecoderNames hfNames(const ModelConfig& c) {
  DecoderNames n = hfDecoderNames();
  n.normPlusOne = true;
  if (c.post_norms) {  // Gemma 2 / 3: four norms per layer
    n.ln2 = "model.layers.{}.pre_feedforward_layernorm.weight";
    n.attnPost = "model.layers.{}.post_attention_layernorm.weight", n.mlpPost = "model.layers.{}.post_feedforward_layernorm.weight";
  }
  if (c.qk_norm != QkNorm::None) n.qNorm = "model.layers.{}.self_attn.q_norm.weight", n.kNorm = "model.layers.{}.self_attn.k_norm.weight";
  return n;
}

ModelWeights gemmaWeightsFromHf(ModelConfig& c, const TensorStore& store) { return loadDecoder(c, store, hfNames(c)); }
TensorMap gemmaWeightsToHf(const ModelConfig& c, const ModelWeights& w) { return decoderTensors(w, hfNames(c), c.norm_weight_offset); }

// llama.cpp's gemma, gemma2 and gemma3. Its converter stores the norm scales as 1 + w (so no offset) and drops
// query_pre_attn_scalar: llama.cpp scales queries by 1/sqrt(key_length), except in the 27B models
// (46 layers in Gemma 2, 62 in Gemma 3: 1/sqrt(embedding_length / head_count)), which is what those
// checkpoints' query_pre_attn_scalar says. Gemma 3's sliding layers: sliding_window_pattern (6 when
// absent, as llama.cpp) with their own RoPE base rope.freq_base_swa (10000 when absent), unscaled.
ModelConfig gemmaConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  ModelConfig c = decoderConfigFromGguf(meta, store, where);
  const std::string a = c.arch;
  const int version = a == "gemma" ? 1 : a == "gemma2" ? 2 : 3;
  c.arch = version == 1 ? "gemma" : version == 2 ? "gemma2" : "gemma3_text";
  c.embed_scale = std::sqrt(static_cast<double>(c.d_model));
  c.act = Activation::GeluNew;
  if (version == 1) {
    c.validate(where);
    return c;
  }
  c.post_norms = true;
  const bool is27b = (version == 2 && c.n_layers == 46) || (version == 3 && c.n_layers == 62);
  c.attn_scale = 1.0 / std::sqrt(static_cast<double>(is27b ? c.d_model / c.n_heads : c.d_head));
  c.final_softcap = optional<double>(meta, (a + ".final_logit_softcapping").c_str(), version == 2 ? 30.0 : 0.0, where);
  if (version == 2) {
    c.attn_softcap = optional<double>(meta, "gemma2.attn_logit_softcapping", 50.0, where);
    if (c.sliding_window == 0) c.sliding_window = 4096;  // llama.cpp's default for Gemma 2
    for (int64_t l = 0; l < c.n_layers; ++l) c.sliding_layers.push_back(l % 2 == 0);
  } else {
    c.qk_norm = QkNorm::PerHead;
    if (c.sliding_window > 0) {
      const int64_t pattern = optional<int64_t>(meta, "gemma3.attention.sliding_window_pattern", 6, where);
      if (pattern <= 0) throw ConfigError(where + ": gemma3.attention.sliding_window_pattern must be positive, got " + std::to_string(pattern));
      for (int64_t l = 0; l < c.n_layers; ++l) c.sliding_layers.push_back((l + 1) % pattern != 0);
      c.rope_local_theta = optional<double>(meta, "gemma3.rope.freq_base_swa", 10000.0, where);
    }
  }
  c.validate(where);
  return c;
}

ModelWeights gemmaWeightsFromGguf(ModelConfig& c, const TensorStore& store) {
  DecoderNames n = ggufDecoderNames();
  if (c.post_norms) n.ln2 = "blk.{}.ffn_norm.weight";  // llama.cpp's FFN_PRE_NORM keeps the name ffn_norm
  c.tied_embeddings = !store.has(n.output);
  return loadDecoder(c, store, n);
}

}  // namespace

ArchSpec gemmaArch() {
  return {"gemma", {"gemma", "gemma2", "gemma3_text"}, {"gemma", "gemma2", "gemma3"}, gemmaConfigFromHf, gemmaWeightsFromHf,
          gemmaConfigFromGguf, gemmaWeightsFromGguf, gemmaWeightsToHf};
}

}  // namespace headlab::arch
