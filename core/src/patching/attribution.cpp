// Attribution patching (Nanda): the first-order estimate (a_clean - a_corrupt) . dmetric/da at
// the corrupted run, for every patch of the sweep at once: 2 forwards, 1 backward.
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "headlab/core/errors.h"
#include "patching_common.h"

namespace headlab {

PatchingResult patchAttribution(HookedTransformer& m, const PatchingRequest& r, const Progress& progress) {
  using namespace patching;
  validate(m, r);
  const SweepShape s = shapeOf(m, r);
  const std::vector<LayerHook> patched = hooksOf(r.sweep, s);
  RunCache clean;
  {
    c10::InferenceMode guard;
    clean = runAndCache(m, r.clean, r.cleanEmbeds, r.answer, r.wrong, patched);
  }
  const size_t L = static_cast<size_t>(s.layers);
  // Corrupted run with a zero "probe" added to every patched activation: its gradient is
  // d metric / d activation along every path.
  c10::AutoGradMode grad(true);
  std::map<LayerHook, std::vector<at::Tensor>> delta, value;
  std::vector<HookHandle> hs;
  auto& hooks = m.hooks();
  for (LayerHook h : patched) {
    auto& d = delta[h];
    auto& v = value[h];
    d.resize(L), v.resize(L);
    for (size_t l = 0; l < L; ++l)
      hs.push_back(hooks.add(hooks.idOf(static_cast<int>(l), h), [&d, &v, l](at::Tensor& a, const HookContext&) {
        v[l] = a.detach().clone();
        d[l] = at::zeros_like(a).requires_grad_(true);
        a = a + d[l];
      }));
  }
  if (progress && !progress(1.0 / 3, "corrupted run")) throw CancelledError();
  at::Tensor logits = runPrompt(m, r.corrupted, r.corruptedEmbeds);
  at::Tensor metric = logits[0][-1][r.answer] - logits[0][-1][r.wrong];
  if (progress && !progress(2.0 / 3, "backward")) throw CancelledError();
  metric.backward();
  hs.clear();
  PatchingResult res = emptyResult(m, r, clean.metric, metric.item<double>(), clean.logitScale);
  res.method = "attribution";
  res.direction = PatchDirection::Denoising;
  const double span = res.cleanMetric - res.corruptedMetric;
  at::Tensor grid = res.grid;
  double* cells = grid.data_ptr<double>();
  for (size_t l = 0; l < L; ++l) {
    std::map<LayerHook, at::Tensor> estimate;  // [1, ...] as the activation
    for (LayerHook h : patched)
      estimate[h] = ((clean.at(h, static_cast<int64_t>(l)) - value[h][l]) * delta[h][l].grad()).to(at::kDouble).detach().cpu();
    const auto patches = allPatchesOfLayer(r.sweep, static_cast<int64_t>(l), s);
    for (const LayerPatch& patch : patches) {
      cells[patch.cell] = sliceOf(patch, estimate[patch.hook][0]).sum().item<double>();
    }
  }
  res.grid = span == 0 ? grid * 0 : grid / span;
  return res;
}

}  // namespace headlab
