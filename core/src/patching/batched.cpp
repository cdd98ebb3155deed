// The batched engine: patches on the batch dimension, every patched run starting at its layer from
// the target run's cached residual stream, so earlier layers are never recomputed.
#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "patching_common.h"

namespace headlab {

namespace {
using namespace patching;

// Every layer runs once: the rows patched at earlier layers flow on, and layer l's own patches
// join the batch there (their rows start from the cached residual stream of layer l).
void runPipelined(HookedTransformer& m, const PatchingRequest& r, const Prepared& p, PatchingResult& res, const Progress& progress) {
  const SweepShape s = shapeOf(m, r);
  const int64_t L = s.layers, T = s.positions;
  at::Tensor resid;  // [rows so far, pos, d_model]
  std::vector<LayerPatch> rows;  // the patch of every row, in batch order
  for (int64_t l = 0; l < L; ++l) {
    const auto mine = allPatchesOfLayer(r.sweep, l, s);
    const int64_t before = static_cast<int64_t>(rows.size()), B = static_cast<int64_t>(mine.size());
    at::Tensor fresh = p.target.at(LayerHook::ResidPre, l).expand({B, -1, -1}).clone();
    resid = before ? at::cat({resid, fresh}) : fresh;
    rows.insert(rows.end(), mine.begin(), mine.end());
    // Rows that joined earlier are not patched again: their mask rows are false.
    auto padded = [before](const at::Tensor& m0) {
      if (!before) return m0;
      std::vector<int64_t> shape = m0.sizes().vec();
      shape[0] = before;
      return at::cat({at::zeros(shape, m0.options()), m0});
    };
    const int li = static_cast<int>(l);
    if (l == L - 1 && before > 0) {
      // The last layer: rows that joined earlier need only the last position (no hooks here);
      // the last layer's own patches run in full with their hooks.
      at::Tensor old = m.block(li, resid.slice(0, 0, before), nullptr, 0, /*lastRowOnly=*/true);
      at::Tensor last;
      {
        auto hs = installPatches(m, li, mine, p.source);
        last = m.block(li, fresh).slice(1, T - 1);
      }
      resid = at::cat({old, last});
      ++res.forwards;
      break;
    }
    auto hs = installPatches(m, li, mine, p.source, padded);
    resid = m.block(li, resid);
    ++res.forwards;
    if (progress && !progress(static_cast<double>(l + 1) / L, "layer " + std::to_string(l))) throw CancelledError();
  }
  at::Tensor metrics = metricsOf(m.unembed(resid.slice(1, resid.size(1) - 1)), r.answer, r.wrong).cpu();  // [rows]
  double* grid = res.grid.data_ptr<double>();
  for (size_t b = 0; b < rows.size(); ++b) grid[rows[b].cell] = normalise(metrics[static_cast<int64_t>(b)].item<double>(), res);
}

// One layer at a time, its patches in chunks of maxBatch rows.
void runPerLayer(HookedTransformer& m, const PatchingRequest& r, const Prepared& p, PatchingResult& res, const Progress& progress) {
  const SweepShape s = shapeOf(m, r);
  double* grid = res.grid.data_ptr<double>();
  for (int64_t l = 0; l < s.layers; ++l) {
    const auto all = allPatchesOfLayer(r.sweep, l, s);
    for (size_t begin = 0; begin < all.size(); begin += static_cast<size_t>(r.maxBatch)) {
      std::vector<LayerPatch> chunk(all.begin() + static_cast<long>(begin),
                                    all.begin() + static_cast<long>(std::min(all.size(), begin + static_cast<size_t>(r.maxBatch))));
      const int64_t B = static_cast<int64_t>(chunk.size());
      at::Tensor resid = p.target.at(LayerHook::ResidPre, l).expand({B, -1, -1}).clone();
      auto hs = installPatches(m, static_cast<int>(l), chunk, p.source);
      at::Tensor metrics = metricsOf(m.forwardFrom(static_cast<int>(l), resid, true), r.answer, r.wrong).cpu();
      ++res.forwards;
      for (int64_t b = 0; b < B; ++b) grid[chunk[static_cast<size_t>(b)].cell] = normalise(metrics[b].item<double>(), res);
    }
    if (progress && !progress(static_cast<double>(l + 1) / s.layers, "layer " + std::to_string(l))) throw CancelledError();
  }
}
}  // namespace

PatchingResult patchBatched(HookedTransformer& m, const PatchingRequest& r, const Progress& progress) {
  c10::InferenceMode guard;
  const SweepShape s = patching::shapeOf(m, r);
  Prepared p = prepare(m, r, hooksOf(r.sweep, s));
  PatchingResult res = std::move(p.result);
  res.method = "exact-batched";
  const int64_t perLayer = static_cast<int64_t>(allPatchesOfLayer(r.sweep, 0, s).size());
  if (r.pipeline && s.layers * perLayer <= r.maxRows)
    runPipelined(m, r, p, res, progress);
  else
    runPerLayer(m, r, p, res, progress);
  return res;
}

}  // namespace headlab
