// What the benchmarks share: random models of published shapes, built on any device, and a timer
// that waits for the device. Header-only, so that scripts/gpu-check.sh can build the GPU benchmark
// with g++ against another libtorch.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "headlab/core/hooked_transformer.h"

namespace headlab::bench {

struct Shape {
  int64_t layers, heads, d_model, d_mlp, vocab, tokens;
};

// A GPT-2-architecture model with random weights (std 0.02), on `device`.
inline HookedTransformer gpt2Like(const Shape& s, at::Device device = at::kCPU) {
  ModelConfig c;
  c.arch = "gpt2";
  c.n_layers = s.layers, c.n_heads = s.heads, c.n_kv_heads = s.heads, c.d_model = s.d_model, c.d_head = s.d_model / s.heads;
  c.d_mlp = s.d_mlp, c.d_vocab = s.vocab, c.n_ctx = 1024;
  c.norm = NormKind::LayerNorm, c.act = Activation::GeluNew, c.gated_mlp = false, c.learned_pos = true, c.rope = RopeLayout::None;
  at::manual_seed(0);
  const auto opts = at::TensorOptions().device(device);
  auto r = [&](std::vector<int64_t> shape) { return at::randn(shape, opts) * 0.02; };
  auto ones = [&](int64_t n) { return at::ones({n}, opts); };
  auto zeros = [&](int64_t n) { return at::zeros({n}, opts); };
  const int64_t D = s.d_model, F = s.d_mlp;
  ModelWeights w;
  w.embed = r({s.vocab, D});
  w.unembed = w.embed;
  w.pos_embed = r({1024, D});
  w.lnf_w = ones(D), w.lnf_b = zeros(D);
  for (int64_t l = 0; l < s.layers; ++l) {
    LayerWeights L;
    L.ln1_w = ones(D), L.ln1_b = zeros(D), L.ln2_w = ones(D), L.ln2_b = zeros(D);
    L.wq = r({D, D}), L.wk = r({D, D}), L.wv = r({D, D}), L.wo = r({D, D});
    L.bq = zeros(D), L.bk = zeros(D), L.bv = zeros(D), L.bo = zeros(D);
    L.w_in = r({F, D}), L.b_in = zeros(F), L.w_out = r({D, F}), L.b_out = zeros(D);
    w.layers.push_back(std::move(L));
  }
  return HookedTransformer(c, std::move(w));
}

// A Llama-architecture model (RMSNorm, SwiGLU, rotate-half RoPE, GQA) with random weights, on `device`:
// Llama-3.2-1B's shape is {16 layers, 32 heads, 8 kv heads, head_dim 64, d_model 2048, SwiGLU 8192,
// vocabulary 128256}.
struct LlamaShape {
  int64_t layers, heads, kvHeads, d_model, d_mlp, vocab, n_ctx;
};
inline HookedTransformer llamaLike(const LlamaShape& s, at::Device device = at::kCPU, at::ScalarType dtype = at::kFloat) {
  ModelConfig c;
  c.arch = "llama";
  c.n_layers = s.layers, c.n_heads = s.heads, c.n_kv_heads = s.kvHeads, c.d_model = s.d_model, c.d_head = s.d_model / s.heads;
  c.d_mlp = s.d_mlp, c.d_vocab = s.vocab, c.n_ctx = s.n_ctx;
  c.norm = NormKind::RmsNorm, c.norm_eps = 1e-5, c.act = Activation::Silu, c.gated_mlp = true, c.rope = RopeLayout::RotateHalf;
  c.rope_theta = 500000.0;
  at::manual_seed(0);
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  auto r = [&](std::vector<int64_t> shape) { return at::randn(shape, opts) * 0.02; };
  const int64_t D = s.d_model, F = s.d_mlp, kv = s.kvHeads * c.d_head;
  ModelWeights w;
  w.embed = r({s.vocab, D});
  w.unembed = w.embed;
  w.lnf_w = at::ones({D}, opts);
  for (int64_t l = 0; l < s.layers; ++l) {
    LayerWeights L;
    L.ln1_w = at::ones({D}, opts), L.ln2_w = at::ones({D}, opts);
    L.wq = r({D, D}), L.wk = r({kv, D}), L.wv = r({kv, D}), L.wo = r({D, D});
    L.w_gate = r({F, D}), L.w_in = r({F, D}), L.w_out = r({D, F});
    w.layers.push_back(std::move(L));
  }
  return HookedTransformer(c, std::move(w));
}

// Waits until the device has finished what was queued (a device-to-host copy on the same stream).
inline void synchronize(at::Device device) {
  if (!device.is_cpu()) at::zeros({1}, at::TensorOptions().device(device)).cpu();
}

// The best of `reps` timed runs after one warm-up, in seconds, the device waited for.
inline double seconds(const std::function<void()>& f, int reps = 1, at::Device device = at::kCPU) {
  f();  // warm-up
  synchronize(device);
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    synchronize(device);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

inline std::vector<int64_t> tokens(int64_t n, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor t = at::randint(vocab, {n}, at::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

}  // namespace headlab::bench
