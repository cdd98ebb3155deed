// A decoder-only transformer whose every intermediate is a TransformerLens hook point.
// Attention is computed explicitly (scores, pattern, z, per-head result) so hooks can read and
// edit each head. The forward is split into embed / block / unembed so callers can restart from
// any layer (suffix recompute) and decode with a KV cache.
// Thread: not thread-safe; one thread runs a model at a time. Create InferenceMode guards in the
// thread that runs it.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "headlab/core/hooks.h"
#include "headlab/core/model_config.h"
#include "headlab/core/model_weights.h"

namespace headlab {

// Keys and values after RoPE, one entry per layer: [batch, kv_head, pos, d_head].
struct KvCache {
  std::vector<at::Tensor> k, v;
  int64_t length = 0;
  void clear() { k.clear(), v.clear(), length = 0; }
};

class HookedTransformer {
 public:
  HookedTransformer(ModelConfig config, ModelWeights weights);

  const ModelConfig& config() const { return m_config; }
  const ModelWeights& weights() const { return m_weights; }
  HookRegistry& hooks() { return m_hooks; }
  const HookRegistry& hooks() const { return m_hooks; }
  at::Device device() const { return m_weights.embed.device(); }
  at::ScalarType dtype() const { return m_weights.embed.scalar_type(); }

  // tokens [batch, pos] int64 -> logits [batch, pos, d_vocab]. Throws InputError on ids out of
  // range, an empty input or more positions than n_ctx.
  at::Tensor forward(const at::Tensor& tokens, KvCache* cache = nullptr);

  // The same forward in pieces. posOffset is the position of the first row (KV-cache decoding).
  at::Tensor embed(const at::Tensor& tokens, int64_t posOffset = 0);          // -> resid_pre of layer 0
  // lastRowOnly: the block's output at the last position only ([batch, 1, d_model]); keys and values
  // still come from every position. Hooks after attention see the one-row shapes with that row's
  // absolute position as their posOffset.
  at::Tensor block(int layer, const at::Tensor& residPre, KvCache* cache = nullptr, int64_t posOffset = 0,
                   bool lastRowOnly = false);
  at::Tensor unembed(const at::Tensor& residFinal);                           // -> logits
  // Runs layers [fromLayer, n_layers) on a given resid_pre and unembeds: suffix recompute.
  // lastPositionOnly unembeds only the final position ([batch, 1, d_vocab]): metrics that read
  // the next-token prediction skip the [pos, d_vocab] product.
  at::Tensor forwardFrom(int fromLayer, const at::Tensor& residPre, bool lastPositionOnly = false);

  void checkTokens(const at::Tensor& tokens, int64_t posOffset = 0) const;
  // Runs `tokens` with a finiteness check on every hook point, in forward order, and returns the
  // first hook whose activation holds NaN or Inf ("" when everything is finite).
  std::string firstNonFiniteHook(const at::Tensor& tokens);
  // Throws NumericError naming that hook when `logits` are not all finite.
  void requireFinite(const at::Tensor& logits, const at::Tensor& tokens);
  // Moves and casts the model (dtype: float32, bfloat16 or float16).
  void to(at::Device device, at::ScalarType dtype);

 private:
  at::Tensor norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const;
  // x [batch, pos, head, d_head]; local: a sliding layer (its own RoPE base where the model has one).
  at::Tensor rope(const at::Tensor& x, int64_t posOffset, bool local = false) const;
  // Extends the RoPE tables to cover `positions` (at most n_ctx).
  void growRopeTables(int64_t positions) const;
  // cos, sin [positions, rotary_dim / 2]; length: see ropeInverseFrequencies (0: within the original context)
  std::pair<at::Tensor, at::Tensor> ropeTables(int64_t positions, bool local, int64_t length = 0) const;
  static constexpr int64_t kInitialRopePositions = 4096;
  at::Tensor attention(int layer, const at::Tensor& x, KvCache* cache, int64_t posOffset, bool lastRowOnly = false);
  at::Tensor mlp(int layer, const at::Tensor& x, int64_t posOffset);
  void hook(int id, at::Tensor& t, int64_t posOffset = 0) { m_hooks.run(id, t, posOffset); }

  ModelConfig m_config;
  ModelWeights m_weights;
  HookRegistry m_hooks;
  mutable at::Tensor m_ropeCos, m_ropeSin;  // [positions built so far <= n_ctx, rotary_dim / 2], float32
  mutable at::Tensor m_ropeLocalCos, m_ropeLocalSin;  // the sliding layers' tables (rope_local_theta > 0)
};

}  // namespace headlab
