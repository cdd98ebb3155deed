// The reference engine: one full forward per patch, as TransformerLens's patching loops do it.
#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "patching_common.h"

namespace headlab {

PatchingResult patchPerForward(HookedTransformer& m, const PatchingRequest& r, const Progress& progress) {
  using namespace patching;
  c10::InferenceMode guard;
  const SweepShape s = shapeOf(m, r);
  Prepared p = prepare(m, r, hooksOf(r.sweep, s));
  PatchingResult res = std::move(p.result);
  res.method = "exact-per-patch";
  const bool denoise = r.direction == PatchDirection::Denoising;
  const auto& tokens = denoise ? r.corrupted : r.clean;
  const at::Tensor& embeds = denoise ? r.corruptedEmbeds : r.cleanEmbeds;
  double* grid = res.grid.data_ptr<double>();
  for (int64_t l = 0; l < s.layers; ++l) {
    for (const LayerPatch& patch : allPatchesOfLayer(r.sweep, l, s)) {
      auto hs = installPatches(m, static_cast<int>(l), {patch}, p.source);
      grid[patch.cell] = normalise(metricOf(runPrompt(m, tokens, embeds), r.answer, r.wrong), res);
      ++res.forwards;
    }
    if (progress && !progress(static_cast<double>(l + 1) / s.layers, "layer " + std::to_string(l))) throw CancelledError();
  }
  return res;
}

}  // namespace headlab
