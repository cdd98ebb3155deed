// What the patching engines share: the cached activations of a run, validation, the metric, the
// masks that select a patch's slice of an activation, and the hooks that apply them.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <vector>

#include "headlab/core/hooked_transformer.h"
#include "headlab/core/patching.h"

namespace headlab::patching {

// Activations of one run, batch 1: per hook, one tensor per layer.
struct RunCache {
  std::map<LayerHook, std::vector<at::Tensor>> acts;
  double metric = 0;
  double logitScale = 0;  // standard deviation of the last position's logits
  const at::Tensor& at(LayerHook h, int64_t layer) const { return acts.at(h)[static_cast<size_t>(layer)]; }
};

double metricOf(const at::Tensor& logits, int64_t answer, int64_t wrong);       // last position, batch 1
at::Tensor metricsOf(const at::Tensor& logits, int64_t answer, int64_t wrong);  // [batch], double
// The logits of one prompt: its tokens embedded, or its given layer-0 input.
at::Tensor runPrompt(HookedTransformer& m, const std::vector<int64_t>& tokens, const at::Tensor& embeds);
// Runs a prompt and keeps `hooks` (and resid_pre, where patched runs start) of every layer.
RunCache runAndCache(HookedTransformer& m, const std::vector<int64_t>& tokens, const at::Tensor& embeds, int64_t answer, int64_t wrong,
                     const std::vector<LayerHook>& hooks);

SweepShape shapeOf(const HookedTransformer& m, const PatchingRequest& r);
// The hooks a sweep patches, in first-use order.
std::vector<LayerHook> hooksOf(SweepKind k, const SweepShape& s);
std::vector<LayerPatch> allPatchesOfLayer(SweepKind k, int64_t layer, const SweepShape& s);

void validate(const HookedTransformer& m, const PatchingRequest& r);

// The clean and corrupted runs, and the result with its metrics, axes and an empty grid.
struct Prepared {
  RunCache target, source;  // target: the run patched into; source: where patches come from
  PatchingResult result;
};
Prepared prepare(HookedTransformer& m, const PatchingRequest& r, const std::vector<LayerHook>& hooks);
// A result with the sweep's axes, a zero grid, both runs' metrics and the small-gap judgement.
PatchingResult emptyResult(const HookedTransformer& m, const PatchingRequest& r, double cleanMetric, double corruptedMetric,
                           double logitScale);
double normalise(double metric, const PatchingResult& r);
// Sets r.logitScale and the small-gap warning from the metrics already in r.
void judgeGap(PatchingResult& r, double logitScale);

// Mask [rows, ...] selecting, for row b, the slice of `hook`'s activation that rows[b] replaces; its
// shape broadcasts against the activation (last axis 1). Rows patching another hook select nothing.
at::Tensor maskFor(LayerHook hook, const std::vector<LayerPatch>& rows, const at::Tensor& activation);
// The slice of one batch row of `patch.hook`'s activation ([pos, head, ...] without the batch axis)
// that the patch replaces: a view.
at::Tensor sliceOf(const LayerPatch& patch, const at::Tensor& row);
// Hooks of layer l replacing, per row, the masked slice with the source run's activation; for
// each hook the rows' mask is passed through `adjust` (padding for rows that joined earlier).
std::vector<HookHandle> installPatches(HookedTransformer& m, int layer, const std::vector<LayerPatch>& rows, const RunCache& source,
                                       const std::function<at::Tensor(const at::Tensor&)>& adjust = {});

}  // namespace headlab::patching
