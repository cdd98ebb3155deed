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

// How a layer's attention is computed.
//   Explicit: the [batch, head, q, k] scores and pattern are formed (memory grows with T^2).
//   Blockwise: query blocks against key blocks with a running softmax (max and sum per row, as
//     FlashAttention does): exact, the same numbers as Explicit to float rounding, memory linear
//     in T; the scores and pattern are never formed.
//   Auto: Blockwise when the explicit scores would pass kAutoBlockwiseBytes, Explicit otherwise
//     (short prompts keep their bit-exact explicit numbers).
// A layer whose attn.hook_attn_scores or attn.hook_pattern is hooked (captures, pattern edits,
// the window's runner) always runs Explicit: those hooks need the full matrices.
enum class AttentionImpl { Auto, Explicit, Blockwise };
const char* attentionImplName(AttentionImpl impl);
struct BlockwiseOptions {
  int64_t queryBlock = 0, keyBlock = 0;  // rows / keys per block; 0: from budgetBytes
  int64_t budgetBytes = int64_t(64) << 20;  // the float32 score block [batch, head, queryBlock, keyBlock] and its temporaries
};
constexpr int64_t kAutoBlockwiseBytes = int64_t(128) << 20;

// Per layer, the log-sum-exp of each query row's scores (after scale, soft-cap and masks) in the
// last forward: [batch, head, q] float32. pattern[q, k] = exp(scores[q, k] - lse[q]): with the
// layer's input this is all the on-demand path (headlab/core/attention_tiles.h) needs.
struct AttentionRowStats {
  std::vector<at::Tensor> logSumExp;
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

  void setAttentionImpl(AttentionImpl impl, BlockwiseOptions options = {}) { m_attnImpl = impl, m_blockwise = options; }
  AttentionImpl attentionImpl() const { return m_attnImpl; }
  // "explicit", "blockwise" or "explicit+blockwise": what the layers of the last forward ran.
  std::string lastAttentionImpl() const;
  // The same over every forward since clearAttentionUsed() ("" when none ran): what a file's
  // provenance records.
  std::string attentionUsed() const;
  void clearAttentionUsed() { m_everExplicit = m_everBlockwise = false; }
  // While set, every forward writes each layer's row statistics into *stats (nullptr stops).
  void recordRowStats(AttentionRowStats* stats) { m_rowStats = stats; }

  // On-demand attention. The scores of query rows [r0, r1) against keys [c0, c1) of the query heads
  // `heads` (empty: all) of `layer`, computed from the layer's input as the forward computes them
  // (scale, soft-cap, causal and sliding-window masks as -inf): [batch, heads, r1 - r0, c1 - c0]
  // float32. residPre: the layer's resid_pre at positions [0, length) (only rows r0..r1 and c0..c1
  // are read); length: the prompt's length (Dynamic / LongRoPE frequencies follow it). Hooks on q
  // and k do not run here: an edit of this layer's queries or keys is not seen.
  at::Tensor scoresTile(int layer, const at::Tensor& residPre, const std::vector<int64_t>& heads, int64_t r0, int64_t r1, int64_t c0,
                        int64_t c1) const;

 private:
  at::Tensor norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const;
  // x [batch, pos, head, d_head]; local: a sliding layer (its own RoPE base where the model has one).
  // length: the length the frequencies follow (Dynamic / LongRoPE), 0 for posOffset + T.
  at::Tensor rope(const at::Tensor& x, int64_t posOffset, bool local = false, int64_t length = 0) const;
  // Queries (query) or keys of rows x ([batch, rows, d_model], ln1-normalised) at absolute positions
  // posOffset.., after the q/k norms and RoPE: [batch, rows, heads, d_head]. No hook runs.
  at::Tensor projectHeads(int layer, const at::Tensor& x, int64_t posOffset, int64_t length, bool query) const;
  at::Tensor qkNorm(int layer, const at::Tensor& t, bool query) const;
  double attentionScale() const;
  // q [B, H, T, dh] (scaled), kt/vt [B, Hkv, S, dh] -> z [B, H, T, dh] and the row log-sum-exp [B, H, T].
  std::pair<at::Tensor, at::Tensor> blockwiseAttention(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& vt, int64_t qOff,
                                                       int64_t window) const;
  // The additive -inf mask of queries at qpos [T] against keys kpos [S] (undefined when nothing is masked).
  at::Tensor maskBlock(int64_t q0, int64_t q1, int64_t k0, int64_t k1, int64_t window, const at::TensorOptions& o) const;
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
  AttentionImpl m_attnImpl = AttentionImpl::Auto;
  BlockwiseOptions m_blockwise;
  AttentionRowStats* m_rowStats = nullptr;
  bool m_ranExplicit = false, m_ranBlockwise = false;  // in the last forward (reset by forward and forwardFrom)
  bool m_everExplicit = false, m_everBlockwise = false;  // since clearAttentionUsed()
};

}  // namespace headlab
