// Attention of a long prompt without any [T, T] held (issue #20). One pass keeps the input
// (resid_pre) of each layer asked for; any tile (layer, heads, rows, columns) of the scores or the
// pattern is then computed exactly from that layer's queries and keys, and the rows' softmax
// statistics (log-sum-exp), which come from the blockwise forward where it ran the layer and are
// otherwise computed for the rows asked, streaming over key blocks. An overview of one head (max
// and mean of the pattern over cells of rows x columns) is built by streaming row blocks.
// Memory: the kept inputs ([T, d_model] per layer), [head, T] statistics per layer, and one block.
// Query head h reads kv head h / (n_heads / n_kv_heads) (GQA), as in the forward.
// Thread: the model's thread (one thread runs a model at a time).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "headlab/core/hooked_transformer.h"
#include "headlab/core/progress.h"

namespace headlab {

struct AttentionTilesOptions {
  std::vector<int> layers;      // the layers to serve (empty: every layer)
  BlockwiseOptions blockwise;   // block sizes of the forward and of the streamed statistics
  int64_t budgetBytes = int64_t(64) << 20;  // one streamed block of pattern rows (overview, statistics)
  Progress progress;            // the forward, layer by layer; false cancels (CancelledError)
  // true: the kept layers run too, so their row statistics come from the forward (browsing every
  // layer). false: only the layers before the last kept one run, and statistics are computed for
  // the rows asked (a capture of a few rows of one layer needs nothing more than its input).
  bool statsFromForward = true;
};

struct AttentionOverview {
  at::Tensor max, mean;            // [cell rows, cell columns] float32; mean counts masked cells as 0
  int64_t rowsPerCell = 1, colsPerCell = 1;  // the last row / column of cells may be shorter
};

class AttentionTiles {
 public:
  // tokens [1, T]. Runs layers 0 .. (the last layer asked for - 1) blockwise, with the model's hooks
  // (its edits apply to every kept input), keeping row statistics of those layers.
  AttentionTiles(HookedTransformer& model, const at::Tensor& tokens, AttentionTilesOptions options = {});
  // The same from layer 0's input (a vision-language prompt's spliced embeddings) [1, T, d_model].
  static AttentionTiles fromEmbeddings(HookedTransformer& model, const at::Tensor& residPre0, AttentionTilesOptions options = {});

  int64_t length() const { return m_length; }
  // [heads, rows, cols] float32; heads empty: every head. Masked cells: -inf scores, 0 pattern.
  at::Tensor scores(int layer, const std::vector<int64_t>& heads, int64_t r0, int64_t r1, int64_t c0, int64_t c1) const;
  at::Tensor pattern(int layer, const std::vector<int64_t>& heads, int64_t r0, int64_t r1, int64_t c0, int64_t c1) const;
  // [heads, r1 - r0] float32: log sum_k exp(scores[q, k]) over every unmasked key of each row.
  at::Tensor rowLogSumExp(int layer, const std::vector<int64_t>& heads, int64_t r0, int64_t r1) const;
  // True when the forward ran `layer` and its statistics are held (otherwise they are computed per request).
  bool hasRowStats(int layer) const;
  // cells: the number of cells along each axis (at most T).
  AttentionOverview overview(int layer, int64_t head, int64_t cells, const Progress& progress = {}) const;
  // Bytes held (kept inputs and statistics).
  uint64_t bytesHeld() const;

 private:
  AttentionTiles(HookedTransformer& model, AttentionTilesOptions options) : m_model(&model), m_options(std::move(options)) {}
  void run(const at::Tensor& residPre0, int64_t posOffsetForProgress);
  const at::Tensor& input(int layer) const;
  std::vector<int64_t> allHeads(const std::vector<int64_t>& heads) const;

  HookedTransformer* m_model;
  AttentionTilesOptions m_options;
  int64_t m_length = 0;
  std::vector<at::Tensor> m_inputs;  // per layer: resid_pre [1, T, d_model] (undefined when not kept)
  AttentionRowStats m_stats;         // per layer [1, head, T] (undefined when the layer did not run)
};

}  // namespace headlab
