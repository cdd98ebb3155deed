// GPT-NeoX / Pythia: LayerNorm with biases, parallel residual (use_parallel_residual), rotary on the
// first rotary_pct of each head (rotate-half), exact GELU, fused query_key_value whose rows are
// grouped per head as [head, (q, k, v), d_head], and an untied embed_out (modeling_gpt_neox).
#include <ATen/ATen.h>

#include <cmath>

#include "architectures.h"

namespace headlab::arch {

namespace {
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
  readRopeScalingFromHf(cfg, c, where);
  c.parallel_residual = optional<bool>(cfg, "use_parallel_residual", true, where);
  c.tied_embeddings = optional<bool>(cfg, "tie_word_embeddings", false, where);
  c.bos_token_id = optional<int64_t>(cfg, "bos_token_id", -1, where);
  c.eos_token_id = optional<int64_t>(cfg, "eos_token_id", -1, where);
  refuseUnimplemented(cfg, {{"attention_bias", true, "attention without biases"}}, where);
  c.validate(where);
  return c;
}

// GPTNeoXForCausalLM's layer tensors besides the fused query_key_value, after "gpt_neox.layers.{l}.".
const std::vector<LayerTensorName> kNeoxLayer = {
    {"input_layernorm.weight", &LayerWeights::ln1_w, 'D', 0},          {"input_layernorm.bias", &LayerWeights::ln1_b, 'D', 0},
    {"post_attention_layernorm.weight", &LayerWeights::ln2_w, 'D', 0}, {"post_attention_layernorm.bias", &LayerWeights::ln2_b, 'D', 0},
    {"attention.dense.weight", &LayerWeights::wo, 'D', 'D'},           {"attention.dense.bias", &LayerWeights::bo, 'D', 0},
    {"mlp.dense_h_to_4h.weight", &LayerWeights::w_in, 'F', 'D'},       {"mlp.dense_h_to_4h.bias", &LayerWeights::b_in, 'F', 0},
    {"mlp.dense_4h_to_h.weight", &LayerWeights::w_out, 'D', 'F'},      {"mlp.dense_4h_to_h.bias", &LayerWeights::b_out, 'D', 0},
};
const char* const kQkvWeight = "attention.query_key_value.weight";
const char* const kQkvBias = "attention.query_key_value.bias";
const char* const kEmbed = "gpt_neox.embed_in.weight";
const char* const kOutput = "embed_out.weight";
const char* const kFinalNormWeight = "gpt_neox.final_layer_norm.weight";
const char* const kFinalNormBias = "gpt_neox.final_layer_norm.bias";
std::string neoxLayer(int64_t l, const char* rest = "") { return "gpt_neox.layers." + std::to_string(l) + "." + rest; }

ModelWeights neoxWeightsFromHf(ModelConfig& c, const TensorStore& st) {
  const int64_t D = c.d_model, F = c.d_mlp, H = c.n_heads, dh = c.d_head;
  if (!st.has(kOutput)) c.tied_embeddings = true;
  ModelWeights w;
  w.embed = st.get(kEmbed, {c.d_vocab, D});
  w.unembed = c.tied_embeddings ? w.embed : st.get(kOutput, {c.d_vocab, D});
  w.lnf_w = st.get(kFinalNormWeight, {D});
  w.lnf_b = st.get(kFinalNormBias, {D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    readLayerTensors(L, st, neoxLayer(l), kNeoxLayer, D, F);
    // Rows [head, (q, k, v), d_head]: regroup into q | k | v, each [head * d_head, D].
    at::Tensor qkv = st.get(neoxLayer(l, kQkvWeight), {3 * D, D}).view({H, 3, dh, D});
    at::Tensor qkvBias = st.get(neoxLayer(l, kQkvBias), {3 * D}).view({H, 3, dh});
    L.wq = qkv.select(1, 0).reshape({D, D}).contiguous(), L.bq = qkvBias.select(1, 0).reshape({D}).contiguous();
    L.wk = qkv.select(1, 1).reshape({D, D}).contiguous(), L.bk = qkvBias.select(1, 1).reshape({D}).contiguous();
    L.wv = qkv.select(1, 2).reshape({D, D}).contiguous(), L.bv = qkvBias.select(1, 2).reshape({D}).contiguous();
    w.layers.push_back(std::move(L));
  }
  return w;
}

TensorMap neoxWeightsToHf(const ModelConfig& c, const ModelWeights& w) {
  const int64_t D = c.d_model, H = c.n_heads, dh = c.d_head;
  TensorMap out;
  out[kEmbed] = w.embed;
  if (!w.unembed.is_same(w.embed)) out[kOutput] = w.unembed;
  out[kFinalNormWeight] = w.lnf_w, out[kFinalNormBias] = w.lnf_b;
  for (int64_t l = 0; l < static_cast<int64_t>(w.layers.size()); ++l) {
    const LayerWeights& L = w.layers[l];
    writeLayerTensors(L, neoxLayer(l), kNeoxLayer, out);
    out[neoxLayer(l, kQkvWeight)] = at::stack({L.wq.view({H, dh, D}), L.wk.view({H, dh, D}), L.wv.view({H, dh, D})}, 1).reshape({3 * D, D});
    out[neoxLayer(l, kQkvBias)] = at::stack({L.bq.view({H, dh}), L.bk.view({H, dh}), L.bv.view({H, dh})}, 1).reshape({3 * D});
  }
  return out;
}

// llama.cpp's gptneox: LayerNorm keys, use_parallel_residual, rope.dimension_count for the partial rotary.
ModelConfig neoxConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  ModelConfig c = decoderConfigFromGguf(meta, store, where);
  c.arch = "gpt_neox";
  c.norm = NormKind::LayerNorm;
  c.norm_eps = require<double>(meta, "gptneox.attention.layer_norm_epsilon", where);
  c.act = Activation::Gelu;  // Pythia's hidden_act; the GGUF does not say (llama.cpp runs its tanh approximation)
  c.gated_mlp = false;
  c.parallel_residual = optional<bool>(meta, "gptneox.use_parallel_residual", true, where);
  c.validate(where);
  return c;
}

// The converter regroups query_key_value's per-head rows into q | k | v blocks (attn_qkv).
const std::vector<LayerTensorName> kNeoxGgufLayer = {
    {"attn_norm.weight", &LayerWeights::ln1_w, 'D', 0},   {"attn_norm.bias", &LayerWeights::ln1_b, 'D', 0},
    {"ffn_norm.weight", &LayerWeights::ln2_w, 'D', 0},    {"ffn_norm.bias", &LayerWeights::ln2_b, 'D', 0},
    {"attn_output.weight", &LayerWeights::wo, 'D', 'D'},  {"attn_output.bias", &LayerWeights::bo, 'D', 0},
    {"ffn_up.weight", &LayerWeights::w_in, 'F', 'D'},     {"ffn_up.bias", &LayerWeights::b_in, 'F', 0},
    {"ffn_down.weight", &LayerWeights::w_out, 'D', 'F'},  {"ffn_down.bias", &LayerWeights::b_out, 'D', 0},
};

ModelWeights neoxWeightsFromGguf(ModelConfig& c, const TensorStore& st) {
  const int64_t D = c.d_model, F = c.d_mlp;
  ModelWeights w;
  w.embed = st.get("token_embd.weight", {c.d_vocab, D});
  w.unembed = c.tied_embeddings ? w.embed : st.get("output.weight", {c.d_vocab, D});
  w.lnf_w = st.get("output_norm.weight", {D});
  w.lnf_b = st.get("output_norm.bias", {D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    const std::string p = "blk." + std::to_string(l) + ".";
    readLayerTensors(L, st, p, kNeoxGgufLayer, D, F);
    auto qkv = st.get(p + "attn_qkv.weight", {3 * D, D}).split(D, 0);
    auto qkvBias = st.get(p + "attn_qkv.bias", {3 * D}).split(D, 0);
    L.wq = qkv[0].contiguous(), L.wk = qkv[1].contiguous(), L.wv = qkv[2].contiguous();
    L.bq = qkvBias[0].contiguous(), L.bk = qkvBias[1].contiguous(), L.bv = qkvBias[2].contiguous();
    w.layers.push_back(std::move(L));
  }
  return w;
}

}  // namespace

ArchSpec neoxArch() {
  return {"gpt_neox", {"gpt_neox"}, {"gptneox"}, neoxConfigFromHf, neoxWeightsFromHf, neoxConfigFromGguf, neoxWeightsFromGguf, neoxWeightsToHf};
}

}  // namespace headlab::arch
