// GPT-NeoX / Pythia: LayerNorm with biases, parallel residual (use_parallel_residual), rotary on the
// first rotary_pct of each head (rotate-half), exact GELU, fused query_key_value whose rows are
// grouped per head as [head, (q, k, v), d_head], and an untied embed_out (modeling_gpt_neox).
#include <cmath>

#include "architectures.h"

namespace headlab::arch {

ModelConfig neoxConfigFromHf(const nlohmann::json& cfg, const std::string& where) {
  ModelConfig c;
  c.arch = "gpt_neox";
  readSizes(cfg, {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"}, c, where);
  c.d_vocab = require<int64_t>(cfg, "vocab_size", where);
  c.n_ctx = optional<int64_t>(cfg, "max_position_embeddings", 2048, where);
  c.norm = NormKind::LayerNorm;
  c.norm_eps = optional<double>(cfg, "layer_norm_eps", 1e-5, where);
  c.act = activationFromHf(optional<std::string>(cfg, "hidden_act", "gelu", where), where);
  c.gated_mlp = false;
  c.rope = RopeLayout::RotateHalf;
  c.rotary_dim = static_cast<int64_t>(static_cast<double>(c.d_head) * optional<double>(cfg, "rotary_pct", 0.25, where));
  c.rope_theta = optional<double>(cfg, "rotary_emb_base", optional<double>(cfg, "rope_theta", 10000.0, where), where);
  c.rope_scaling = ropeScalingFromHf(cfg, c.n_ctx, where);
  c.parallel_residual = optional<bool>(cfg, "use_parallel_residual", true, where);
  c.tied_embeddings = optional<bool>(cfg, "tie_word_embeddings", false, where);
  c.bos_token_id = optional<int64_t>(cfg, "bos_token_id", -1, where);
  c.eos_token_id = optional<int64_t>(cfg, "eos_token_id", -1, where);
  refuseUnimplemented(cfg, {{"attention_bias", true, "attention without biases"}}, where);
  c.validate(where);
  return c;
}

ModelWeights neoxWeightsFromHf(ModelConfig& c, const TensorStore& st) {
  const int64_t D = c.d_model, F = c.d_mlp, H = c.n_heads, dh = c.d_head;
  auto layer = [](int64_t l, const char* rest) { return "gpt_neox.layers." + std::to_string(l) + "." + rest; };
  if (!st.has("embed_out.weight")) c.tied_embeddings = true;
  ModelWeights w;
  w.embed = st.get("gpt_neox.embed_in.weight", {c.d_vocab, D});
  w.unembed = c.tied_embeddings ? w.embed : st.get("embed_out.weight", {c.d_vocab, D});
  w.lnf_w = st.get("gpt_neox.final_layer_norm.weight", {D});
  w.lnf_b = st.get("gpt_neox.final_layer_norm.bias", {D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.ln1_w = st.get(layer(l, "input_layernorm.weight"), {D}), L.ln1_b = st.get(layer(l, "input_layernorm.bias"), {D});
    L.ln2_w = st.get(layer(l, "post_attention_layernorm.weight"), {D}), L.ln2_b = st.get(layer(l, "post_attention_layernorm.bias"), {D});
    // Rows [head, (q, k, v), d_head]: regroup into q | k | v, each [head * d_head, D].
    at::Tensor qkv = st.get(layer(l, "attention.query_key_value.weight"), {3 * D, D}).view({H, 3, dh, D});
    at::Tensor qkvBias = st.get(layer(l, "attention.query_key_value.bias"), {3 * D}).view({H, 3, dh});
    L.wq = qkv.select(1, 0).reshape({D, D}).contiguous(), L.bq = qkvBias.select(1, 0).reshape({D}).contiguous();
    L.wk = qkv.select(1, 1).reshape({D, D}).contiguous(), L.bk = qkvBias.select(1, 1).reshape({D}).contiguous();
    L.wv = qkv.select(1, 2).reshape({D, D}).contiguous(), L.bv = qkvBias.select(1, 2).reshape({D}).contiguous();
    L.wo = st.get(layer(l, "attention.dense.weight"), {D, D}), L.bo = st.get(layer(l, "attention.dense.bias"), {D});
    L.w_in = st.get(layer(l, "mlp.dense_h_to_4h.weight"), {F, D}), L.b_in = st.get(layer(l, "mlp.dense_h_to_4h.bias"), {F});
    L.w_out = st.get(layer(l, "mlp.dense_4h_to_h.weight"), {D, F}), L.b_out = st.get(layer(l, "mlp.dense_4h_to_h.bias"), {D});
    w.layers.push_back(std::move(L));
  }
  return w;
}

}  // namespace headlab::arch
