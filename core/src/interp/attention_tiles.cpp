#include "headlab/core/attention_tiles.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "headlab/core/errors.h"

namespace headlab {

namespace {
// Sets the model's attention implementation and row-statistics sink for one pass, and restores them.
class BlockwiseScope {
 public:
  BlockwiseScope(HookedTransformer& m, const BlockwiseOptions& o, AttentionRowStats* stats) : m_model(m), m_previous(m.attentionImpl()) {
    m.setAttentionImpl(AttentionImpl::Blockwise, o);
    m.recordRowStats(stats);
  }
  ~BlockwiseScope() {
    m_model.recordRowStats(nullptr);
    m_model.setAttentionImpl(m_previous);
  }

 private:
  HookedTransformer& m_model;
  AttentionImpl m_previous;
};

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

AttentionTiles::AttentionTiles(HookedTransformer& model, const at::Tensor& tokens, AttentionTilesOptions options)
    : AttentionTiles(model, std::move(options)) {
  if (tokens.dim() != 2 || tokens.size(0) != 1) throw InputError("attention tiles: tokens must be [1, pos]");
  model.checkTokens(tokens);
  run(model.embed(tokens), 0);
}

AttentionTiles AttentionTiles::fromEmbeddings(HookedTransformer& model, const at::Tensor& residPre0, AttentionTilesOptions options) {
  if (residPre0.dim() != 3 || residPre0.size(0) != 1 || residPre0.size(2) != model.config().d_model)
    throw InputError("attention tiles: layer 0's input must be [1, pos, " + std::to_string(model.config().d_model) + "]");
  AttentionTiles t(model, std::move(options));
  t.run(residPre0, 0);
  return t;
}

void AttentionTiles::run(const at::Tensor& residPre0, int64_t) {
  const int n = static_cast<int>(m_model->config().n_layers);
  m_length = residPre0.size(1);
  if (m_length > m_model->config().n_ctx)
    throw InputError("prompt of " + std::to_string(m_length) + " tokens is longer than the model's context of " +
                     std::to_string(m_model->config().n_ctx));
  std::vector<bool> keep(n, m_options.layers.empty());
  int last = m_options.layers.empty() ? n - 1 : -1;
  for (int l : m_options.layers) {
    if (l < 0 || l >= n) throw InputError("layer " + std::to_string(l) + " out of range [0, " + std::to_string(n) + ")");
    keep[l] = true, last = std::max(last, l);
  }
  m_inputs.assign(n, at::Tensor());
  const int runThrough = m_options.statsFromForward ? last : last - 1;
  BlockwiseScope scope(*m_model, m_options.blockwise, &m_stats);
  std::vector<HookHandle> handles;
  for (int l = 0; l <= last; ++l)
    if (keep[l])  // added last, so it keeps what the layer reads after any edit of resid_pre
      handles.push_back(m_model->hooks().add(m_model->hooks().idOf(l, LayerHook::ResidPre),
                                             [this, l](at::Tensor& t, const HookContext&) { m_inputs[l] = t; }));
  at::Tensor resid = residPre0;
  for (int l = 0; l <= runThrough; ++l) {
    resid = m_model->block(l, resid);
    if (m_options.progress && !m_options.progress(static_cast<double>(l + 1) / (runThrough + 1), "layer " + std::to_string(l)))
      throw CancelledError();
  }
  if (runThrough < last) m_inputs[last] = resid;  // the last kept layer's input, its block not run
  m_stats.logSumExp.resize(n);
  for (int l = runThrough + 1; l < n; ++l) m_stats.logSumExp[l] = at::Tensor();
}

const at::Tensor& AttentionTiles::input(int layer) const {
  if (layer < 0 || layer >= static_cast<int>(m_inputs.size()) || !m_inputs[layer].defined())
    throw InputError("attention tiles: layer " + std::to_string(layer) + " was not kept (layers asked for: " +
                     (m_options.layers.empty() ? std::string("all") : std::to_string(m_options.layers.size())) + ")");
  return m_inputs[layer];
}

bool AttentionTiles::hasRowStats(int layer) const {
  return layer >= 0 && layer < static_cast<int>(m_stats.logSumExp.size()) && m_stats.logSumExp[layer].defined();
}

std::vector<int64_t> AttentionTiles::allHeads(const std::vector<int64_t>& heads) const {
  if (!heads.empty()) return heads;
  std::vector<int64_t> all(m_model->config().n_heads);
  for (size_t h = 0; h < all.size(); ++h) all[h] = static_cast<int64_t>(h);
  return all;
}

at::Tensor AttentionTiles::scores(int layer, const std::vector<int64_t>& heads, int64_t r0, int64_t r1, int64_t c0, int64_t c1) const {
  return m_model->scoresTile(layer, input(layer), heads, r0, r1, c0, c1)[0];
}

at::Tensor AttentionTiles::rowLogSumExp(int layer, const std::vector<int64_t>& headsIn, int64_t r0, int64_t r1) const {
  const std::vector<int64_t> heads = allHeads(headsIn);
  const at::Tensor& x = input(layer);
  if (r0 < 0 || r1 > m_length || r0 >= r1)
    throw InputError("rows " + std::to_string(r0) + ":" + std::to_string(r1) + " outside the prompt's " + std::to_string(m_length) + " positions");
  if (hasRowStats(layer))
    return m_stats.logSumExp[layer][0].index_select(0, at::tensor(heads, at::kLong).to(x.device())).slice(1, r0, r1);
  // Streamed over key blocks with a running max and sum, as the blockwise forward does.
  const auto& c = m_model->config();
  const int64_t window = c.slidingWindowAt(layer);
  const int64_t kHi = c.causal ? r1 : m_length, kLo = window > 0 ? std::max<int64_t>(0, r0 - window + 1) : 0;
  const int64_t rows = r1 - r0, H = static_cast<int64_t>(heads.size());
  const int64_t block = std::max<int64_t>(64, m_options.budgetBytes / (H * rows * 4 * 2));
  const double inf = std::numeric_limits<double>::infinity();
  const auto f32 = x.options().dtype(at::kFloat);
  at::Tensor m = at::full({H, rows}, -inf, f32), sum = at::zeros({H, rows}, f32);
  for (int64_t k0 = kLo; k0 < kHi; k0 += block) {
    const at::Tensor s = m_model->scoresTile(layer, x, heads, r0, r1, k0, std::min(kHi, k0 + block))[0];
    const at::Tensor mNew = at::maximum(m, std::get<0>(s.max(-1)));
    const at::Tensor shift = mNew.masked_fill(mNew == -inf, 0);
    sum = sum * at::exp(m - shift) + at::exp(s - shift.unsqueeze(-1)).sum(-1);
    m = mNew;
  }
  return m + at::log(sum);
}

at::Tensor AttentionTiles::pattern(int layer, const std::vector<int64_t>& heads, int64_t r0, int64_t r1, int64_t c0, int64_t c1) const {
  const at::Tensor s = scores(layer, heads, r0, r1, c0, c1);  // validates the ranges
  return at::exp(s - rowLogSumExp(layer, heads, r0, r1).unsqueeze(-1));
}

AttentionOverview AttentionTiles::overview(int layer, int64_t head, int64_t cells, const Progress& progress) const {
  if (cells < 1) throw InputError("overview: at least one cell per axis");
  const int64_t T = m_length, cell = ceilDiv(T, std::min(cells, T)), n = ceilDiv(T, cell);
  const auto& c = m_model->config();
  const int64_t window = c.slidingWindowAt(layer);
  const auto f32 = input(layer).options().dtype(at::kFloat);
  at::Tensor mx = at::zeros({n, n}, f32), sum = at::zeros({n, n}, f32);
  // Bands of whole cell rows, as many as one block of [rows, T] float32 holds.
  const int64_t cellsPerBand = std::max<int64_t>(1, m_options.budgetBytes / (cell * n * cell * 4 * 3));
  for (int64_t i0 = 0; i0 < n; i0 += cellsPerBand) {
    const int64_t i1 = std::min(n, i0 + cellsPerBand), r0 = i0 * cell, r1 = std::min(T, i1 * cell);
    // Keys that can hold weight for these rows: [kLo, kHi), widened to whole cells.
    const int64_t kHi = c.causal ? r1 : T, kLo = window > 0 ? std::max<int64_t>(0, r0 - window + 1) : 0;
    const int64_t j0 = kLo / cell, j1 = ceilDiv(kHi, cell), c0 = j0 * cell, c1 = std::min(T, j1 * cell);
    at::Tensor p = pattern(layer, {head}, r0, r1, c0, c1)[0];  // [rows, cols]
    p = at::constant_pad_nd(p, {0, (j1 - j0) * cell - (c1 - c0), 0, (i1 - i0) * cell - (r1 - r0)}, 0.0);
    p = p.view({i1 - i0, cell, j1 - j0, cell});
    mx.slice(0, i0, i1).slice(1, j0, j1).copy_(p.amax({1, 3}));
    sum.slice(0, i0, i1).slice(1, j0, j1).copy_(p.sum({1, 3}));
    if (progress && !progress(static_cast<double>(i1) / n, "overview rows " + std::to_string(r1) + "/" + std::to_string(T)))
      throw CancelledError();
  }
  // Cells on the last row / column are shorter when cell does not divide T.
  at::Tensor extent = at::full({n}, static_cast<double>(cell), f32);
  extent[n - 1] = static_cast<double>(T - (n - 1) * cell);
  AttentionOverview o;
  o.max = mx, o.mean = sum / (extent.unsqueeze(1) * extent.unsqueeze(0));
  o.rowsPerCell = o.colsPerCell = cell;
  return o;
}

uint64_t AttentionTiles::bytesHeld() const {
  uint64_t b = 0;
  for (const auto& t : m_inputs)
    if (t.defined()) b += t.numel() * t.element_size();
  for (const auto& t : m_stats.logSumExp)
    if (t.defined()) b += t.numel() * t.element_size();
  return b;
}

}  // namespace headlab
