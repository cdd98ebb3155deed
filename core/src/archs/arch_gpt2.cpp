// GPT-2: LayerNorm, learned positions, GELU (tanh), fused c_attn stored as Conv1D [in, out]. In GGUF
// (llama.cpp's convert_hf_to_gguf) the Conv1D matrices are transposed to [out, in] and named
// token_embd / position_embd / blk.N.attn_qkv / attn_output / ffn_up / ffn_down, with output.weight a
// copy of the embedding.
#include <ATen/ATen.h>

#include "architectures.h"
#include "headlab/core/errors.h"

namespace headlab::arch {

namespace {
ModelConfig gpt2ConfigFromHf(const nlohmann::json& cfg, const std::string& where) {
  ModelConfig c;
  c.arch = "gpt2";
  const int64_t width = require<int64_t>(cfg, "n_embd", where);
  readSizes(cfg, {"n_embd", "n_layer", "n_head", "n_inner", 4 * width}, c, where);
  c.d_vocab = require<int64_t>(cfg, "vocab_size", where);
  c.n_ctx = optional<int64_t>(cfg, "n_positions", optional<int64_t>(cfg, "n_ctx", 1024, where), where);
  c.norm = NormKind::LayerNorm;
  c.norm_eps = optional<double>(cfg, "layer_norm_epsilon", 1e-5, where);
  std::string act = optional<std::string>(cfg, "activation_function", "gelu_new", where);
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.act = Activation::GeluNew;
  else if (act == "gelu") c.act = Activation::Gelu;
  else if (act == "relu") c.act = Activation::Relu;
  else throw ConfigError(where + ": activation_function '" + act + "' unsupported");
  c.gated_mlp = false;
  c.learned_pos = true;
  c.rope = RopeLayout::None;
  c.tied_embeddings = optional<bool>(cfg, "tie_word_embeddings", true, where);
  refuseUnimplemented(cfg, {{"scale_attn_weights", true, "attention without the 1/sqrt(d_head) scale"},
                            {"scale_attn_by_inverse_layer_idx", false, "attention scaled by 1/(layer + 1)"},
                            {"add_cross_attention", false, "cross-attention"}}, where);
  c.bos_token_id = optional<int64_t>(cfg, "bos_token_id", -1, where);
  c.eos_token_id = optional<int64_t>(cfg, "eos_token_id", -1, where);
  c.validate(where);
  return c;
}

// GPT2LMHeadModel's layer tensors besides the fused c_attn, after "h.{l}.". Conv1D matrices are
// stored transposed ([in, out]). Read and written from this one table.
const std::vector<LayerTensorName> kGpt2Layer = {
    {"ln_1.weight", &LayerWeights::ln1_w, 'D', 0},        {"ln_1.bias", &LayerWeights::ln1_b, 'D', 0},
    {"attn.c_proj.weight", &LayerWeights::wo, 'D', 'D'},  {"attn.c_proj.bias", &LayerWeights::bo, 'D', 0},
    {"ln_2.weight", &LayerWeights::ln2_w, 'D', 0},        {"ln_2.bias", &LayerWeights::ln2_b, 'D', 0},
    {"mlp.c_fc.weight", &LayerWeights::w_in, 'F', 'D'},   {"mlp.c_fc.bias", &LayerWeights::b_in, 'F', 0},
    {"mlp.c_proj.weight", &LayerWeights::w_out, 'D', 'F'}, {"mlp.c_proj.bias", &LayerWeights::b_out, 'D', 0},
};
const char* const kQkvWeight = "attn.c_attn.weight";
const char* const kQkvBias = "attn.c_attn.bias";
std::string gpt2Layer(const std::string& prefix, int64_t l, const char* rest = "") { return prefix + "h." + std::to_string(l) + "." + rest; }

ModelWeights gpt2WeightsFromHf(ModelConfig& c, const TensorStore& st) {
  // Hugging Face's GPT2LMHeadModel prefixes "transformer."; the original gpt2 upload does not.
  const std::string p = st.has("transformer.wte.weight") ? "transformer." : "";
  const int64_t D = c.d_model;
  ModelWeights w;
  w.embed = st.get(p + "wte.weight", {c.d_vocab, D});
  w.pos_embed = st.get(p + "wpe.weight", {c.n_ctx, D});
  w.lnf_w = st.get(p + "ln_f.weight", {D});
  w.lnf_b = st.get(p + "ln_f.bias", {D});
  w.unembed = c.tied_embeddings || !st.has("lm_head.weight") ? w.embed : st.get("lm_head.weight", {c.d_vocab, D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    readLayerTensors(L, st, gpt2Layer(p, l), kGpt2Layer, D, c.d_mlp, /*transposed=*/true);
    // Conv1D stores [in, out]; split the fused q|k|v columns and transpose to [out, in].
    auto cols = st.get(gpt2Layer(p, l, kQkvWeight), {D, 3 * D}).split(D, 1);
    auto bias = st.get(gpt2Layer(p, l, kQkvBias), {3 * D}).split(D, 0);
    L.wq = cols[0].t().contiguous(), L.wk = cols[1].t().contiguous(), L.wv = cols[2].t().contiguous();
    L.bq = bias[0].contiguous(), L.bk = bias[1].contiguous(), L.bv = bias[2].contiguous();
    w.layers.push_back(std::move(L));
  }
  return w;
}

TensorMap gpt2WeightsToHf(const ModelConfig& c, const ModelWeights& w) {
  const std::string p = "transformer.";
  TensorMap out;
  out[p + "wte.weight"] = w.embed;
  out[p + "wpe.weight"] = w.pos_embed;
  out[p + "ln_f.weight"] = w.lnf_w, out[p + "ln_f.bias"] = w.lnf_b;
  if (!c.tied_embeddings && !w.unembed.is_same(w.embed)) out["lm_head.weight"] = w.unembed;
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    writeLayerTensors(L, gpt2Layer(p, l), kGpt2Layer, out, /*transposed=*/true);
    out[gpt2Layer(p, l, kQkvWeight)] = at::cat({L.wq, L.wk, L.wv}, 0).t().contiguous();
    out[gpt2Layer(p, l, kQkvBias)] = at::cat({L.bq, L.bk, L.bv});
  }
  return out;
}

ModelConfig gpt2ConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  ModelConfig c;
  c.arch = "gpt2";
  const int64_t width = require<int64_t>(meta, "gpt2.embedding_length", where);
  readSizes(meta, {"gpt2.embedding_length", "gpt2.block_count", "gpt2.attention.head_count", "gpt2.feed_forward_length", 4 * width}, c,
            where);
  c.n_ctx = require<int64_t>(meta, "gpt2.context_length", where);
  c.norm = NormKind::LayerNorm;
  c.norm_eps = optional<double>(meta, "gpt2.attention.layer_norm_epsilon", 1e-5, where);
  c.act = Activation::GeluNew;
  c.gated_mlp = false;
  c.learned_pos = true;
  c.rope = RopeLayout::None;
  ggufVocabularyAndIds(meta, store, c, where);
  c.validate(where);
  return c;
}

ModelWeights gpt2WeightsFromGguf(ModelConfig& c, const TensorStore& st) {
  const int64_t D = c.d_model, F = c.d_mlp;
  auto layer = [](int64_t l, const char* rest) { return "blk." + std::to_string(l) + "." + rest; };
  ModelWeights w;
  w.embed = st.get("token_embd.weight", {c.d_vocab, D});
  w.pos_embed = st.get("position_embd.weight", {c.n_ctx, D});
  w.lnf_w = st.get("output_norm.weight", {D});
  w.lnf_b = st.get("output_norm.bias", {D});
  w.unembed = c.tied_embeddings ? w.embed : st.get("output.weight", {c.d_vocab, D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.ln1_w = st.get(layer(l, "attn_norm.weight"), {D}), L.ln1_b = st.get(layer(l, "attn_norm.bias"), {D});
    auto qkv = st.get(layer(l, "attn_qkv.weight"), {3 * D, D}).split(D, 0);  // rows q | k | v
    auto qkvBias = st.get(layer(l, "attn_qkv.bias"), {3 * D}).split(D, 0);
    L.wq = qkv[0].contiguous(), L.wk = qkv[1].contiguous(), L.wv = qkv[2].contiguous();
    L.bq = qkvBias[0].contiguous(), L.bk = qkvBias[1].contiguous(), L.bv = qkvBias[2].contiguous();
    L.wo = st.get(layer(l, "attn_output.weight"), {D, D}), L.bo = st.get(layer(l, "attn_output.bias"), {D});
    L.ln2_w = st.get(layer(l, "ffn_norm.weight"), {D}), L.ln2_b = st.get(layer(l, "ffn_norm.bias"), {D});
    L.w_in = st.get(layer(l, "ffn_up.weight"), {F, D}), L.b_in = st.get(layer(l, "ffn_up.bias"), {F});
    L.w_out = st.get(layer(l, "ffn_down.weight"), {D, F}), L.b_out = st.get(layer(l, "ffn_down.bias"), {D});
    w.layers.push_back(std::move(L));
  }
  return w;
}

}  // namespace

ArchSpec gpt2Arch() { return {"gpt2", {"gpt2"}, {"gpt2"}, gpt2ConfigFromHf, gpt2WeightsFromHf, gpt2ConfigFromGguf, gpt2WeightsFromGguf, gpt2WeightsToHf}; }

}  // namespace headlab::arch
