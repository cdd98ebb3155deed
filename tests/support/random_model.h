// Small transformers with seeded random weights, for invariant tests and benchmarks.
#pragma once
#include <ATen/ATen.h>

#include "headlab/core/hooked_transformer.h"

namespace headlab::test {

inline ModelConfig smallConfig(const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  c.n_layers = 3, c.n_heads = 4, c.n_kv_heads = 4, c.d_model = 32, c.d_head = 8, c.d_mlp = 48, c.d_vocab = 50, c.n_ctx = 64;
  if (arch == "gpt2") {
    c.norm = NormKind::LayerNorm, c.act = Activation::GeluNew, c.gated_mlp = false, c.learned_pos = true;
    c.rope = RopeLayout::None;
  } else {
    c.norm = NormKind::RmsNorm, c.act = Activation::Silu, c.gated_mlp = true, c.rope = RopeLayout::RotateHalf;
    c.n_kv_heads = 2;  // GQA
    if (arch == "llama2c") c.rope = RopeLayout::Interleaved;
    if (arch == "mistral") c.sliding_window = 5;
  }
  return c;
}

inline ModelWeights randomWeights(const ModelConfig& c, uint64_t seed = 0, double scale = 0.3) {
  at::manual_seed(seed);
  auto r = [&](std::vector<int64_t> s) { return at::randn(s) * scale; };
  const int64_t D = c.d_model, q = c.n_heads * c.d_head, kv = c.n_kv_heads * c.d_head, F = c.d_mlp;
  const bool ln = c.norm == NormKind::LayerNorm, bias = c.arch == "gpt2" || c.arch == "qwen2";
  ModelWeights w;
  w.embed = r({c.d_vocab, D}) * 3;
  if (c.learned_pos) w.pos_embed = r({c.n_ctx, D});
  w.lnf_w = 1 + r({D}) * 0.1;
  if (ln) w.lnf_b = r({D}) * 0.1;
  w.unembed = c.tied_embeddings ? w.embed : r({c.d_vocab, D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.ln1_w = 1 + r({D}) * 0.1, L.ln2_w = 1 + r({D}) * 0.1;
    if (ln) L.ln1_b = r({D}) * 0.1, L.ln2_b = r({D}) * 0.1;
    L.wq = r({q, D}), L.wk = r({kv, D}), L.wv = r({kv, D}), L.wo = r({D, q});
    if (bias) L.bq = r({q}), L.bk = r({kv}), L.bv = r({kv});
    if (c.arch == "gpt2") L.bo = r({D}), L.b_in = r({F}), L.b_out = r({D});
    if (c.gated_mlp) L.w_gate = r({F, D});
    L.w_in = r({F, D}), L.w_out = r({D, F});
    w.layers.push_back(std::move(L));
  }
  return w;
}

inline HookedTransformer randomModel(const std::string& arch, uint64_t seed = 0) {
  ModelConfig c = smallConfig(arch);
  return HookedTransformer(c, randomWeights(c, seed));
}

inline at::Tensor randomTokens(int64_t batch, int64_t pos, int64_t vocab, uint64_t seed = 1) {
  at::manual_seed(seed);
  return at::randint(vocab, {batch, pos}, at::kLong);
}

}  // namespace headlab::test
