// A GPT-2-shaped model whose weights are built by hand so that one known head (layer 1, head 2)
// copies the answer: it attends from every position to the token that is 3 or 4 and writes that
// token's identity into the residual stream, which the tied unembedding reads out. Every other
// head is a small random distractor.
//   clean     [0, 3, 5, 6, 7, 5] -> answer 3
//   corrupted [0, 4, 5, 6, 7, 5] -> answer 4
#pragma once
#include <ATen/ATen.h>

#include "headlab/core/hooked_transformer.h"

namespace headlab::test {

constexpr int kPlantedLayer = 1, kPlantedHead = 2;

inline HookedTransformer plantedCircuitModel() {
  ModelConfig c;
  c.arch = "gpt2";
  c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 4, c.d_model = 16, c.d_head = 4, c.d_mlp = 4, c.d_vocab = 8, c.n_ctx = 16;
  c.norm = NormKind::LayerNorm, c.act = Activation::GeluNew, c.gated_mlp = false, c.learned_pos = true, c.rope = RopeLayout::None;
  at::manual_seed(11);
  const int64_t D = 16, q = 16;
  ModelWeights w;
  w.embed = at::zeros({8, D});
  for (int t = 0; t < 8; ++t) w.embed[t][t] = 1.0;  // one-hot token subspace, dims 0..7
  w.unembed = w.embed;
  w.pos_embed = at::zeros({16, D});
  w.lnf_w = at::ones({D}), w.lnf_b = at::zeros({D});
  for (int l = 0; l < 2; ++l) {
    LayerWeights L;
    L.ln1_w = at::ones({D}), L.ln1_b = at::zeros({D}), L.ln2_w = at::ones({D}), L.ln2_b = at::zeros({D});
    L.wq = at::randn({q, D}) * 0.05, L.wk = at::randn({q, D}) * 0.05, L.wv = at::randn({q, D}) * 0.05;
    L.wo = at::randn({D, q}) * 0.05;
    L.bq = at::zeros({q}), L.bk = at::zeros({q}), L.bv = at::zeros({q}), L.bo = at::zeros({D});
    L.w_in = at::zeros({4, D}), L.b_in = at::zeros({4}), L.w_out = at::zeros({D, 4}), L.b_out = at::zeros({D});
    w.layers.push_back(L);
  }
  // The planted head: rows [8, 12) of the q/k/v projections, columns [8, 12) of W_O.
  LayerWeights& P = w.layers[kPlantedLayer];
  const int64_t h0 = kPlantedHead * 4;
  for (int64_t i = 0; i < 4; ++i) {
    P.wq[h0 + i].zero_(), P.wk[h0 + i].zero_(), P.wv[h0 + i].zero_();
    P.wo.select(1, h0 + i).zero_();
  }
  P.bq[h0] = 10.0;                                   // constant query
  P.wk[h0][3] = 2.0, P.wk[h0][4] = 2.0;              // keys light up on tokens 3 and 4
  P.wv[h0][3] = 1.0, P.wv[h0 + 1][4] = 1.0;          // value carries which one it was
  P.wo[3][h0] = 1.0, P.wo[4][h0 + 1] = 1.0;          // and writes it where the unembedding reads
  return HookedTransformer(c, w);
}

}  // namespace headlab::test

namespace headlab::test {

// Two planted steps: layer 0, head 1 ("mover") finds the token that is 3 or 4 and writes its
// identity into residual dims 8 and 9 at every position; layer 1, head 2 attends uniformly
// (zero query and key) and its VALUE reads dims 8 and 9 and writes them to dims 3 and 4, where the
// unembedding reads the answer. The whole effect of the mover flows through the value input of
// L1H2; none through its query or key.
constexpr int kMoverLayer = 0, kMoverHead = 1, kReaderLayer = 1, kReaderHead = 2;

inline HookedTransformer plantedTwoStepModel() {
  HookedTransformer base = plantedCircuitModel();
  ModelConfig c = base.config();
  ModelWeights w = base.weights();
  for (auto& L : w.layers)
    for (at::Tensor* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.bq}) *t = t->clone();
  // Undo the single planted head of plantedCircuitModel (layer 1, head 2) and plant the two steps.
  auto clearHead = [&](int l, int h) {
    for (int64_t i = 0; i < 4; ++i) {
      w.layers[l].wq[h * 4 + i].zero_(), w.layers[l].wk[h * 4 + i].zero_(), w.layers[l].wv[h * 4 + i].zero_();
      w.layers[l].bq[h * 4 + i] = 0.0;
      w.layers[l].wo.select(1, h * 4 + i).zero_();
    }
  };
  clearHead(kMoverLayer, kMoverHead);
  clearHead(kReaderLayer, kReaderHead);
  LayerWeights& M = w.layers[kMoverLayer];
  const int64_t m0 = kMoverHead * 4;
  M.bq[m0] = 10.0;
  M.wk[m0][3] = 2.0, M.wk[m0][4] = 2.0;
  M.wv[m0][3] = 1.0, M.wv[m0 + 1][4] = 1.0;
  M.wo[8][m0] = 1.0, M.wo[9][m0 + 1] = 1.0;
  LayerWeights& R = w.layers[kReaderLayer];
  const int64_t r0 = kReaderHead * 4;
  R.wv[r0][8] = 1.0, R.wv[r0 + 1][9] = 1.0;
  R.wo[3][r0] = 3.0, R.wo[4][r0 + 1] = 3.0;
  return HookedTransformer(c, w);
}

}  // namespace headlab::test
