#include "patching_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "headlab/core/errors.h"

namespace headlab::patching {

double metricOf(const at::Tensor& logits, int64_t answer, int64_t wrong) {
  at::Tensor last = logits.select(1, -1);  // [batch, d_vocab]
  return (last.select(1, answer) - last.select(1, wrong)).item<double>();
}

at::Tensor metricsOf(const at::Tensor& logits, int64_t answer, int64_t wrong) {
  at::Tensor last = logits.select(1, -1).to(at::kDouble);
  return last.select(1, answer) - last.select(1, wrong);  // [batch]
}

at::Tensor runPrompt(HookedTransformer& m, const std::vector<int64_t>& tokens, const at::Tensor& embeds) {
  return embeds.defined() ? m.forwardFrom(0, embeds) : m.forward(at::tensor(tokens, at::kLong).unsqueeze(0));
}

RunCache runAndCache(HookedTransformer& m, const std::vector<int64_t>& tokens, const at::Tensor& embeds, int64_t answer, int64_t wrong,
                     const std::vector<LayerHook>& hooks) {
  const int L = static_cast<int>(m.config().n_layers);
  RunCache c;
  std::vector<LayerHook> kept = hooks;
  if (std::find(kept.begin(), kept.end(), LayerHook::ResidPre) == kept.end()) kept.push_back(LayerHook::ResidPre);
  std::vector<HookHandle> hs;
  auto& H = m.hooks();
  for (LayerHook h : kept) {
    auto& slot = c.acts[h];
    slot.resize(static_cast<size_t>(L));
    for (int l = 0; l < L; ++l)
      hs.push_back(H.add(H.idOf(l, h), [&slot, l](at::Tensor& t, const HookContext&) { slot[static_cast<size_t>(l)] = t.clone(); }));
  }
  const at::Tensor logits = runPrompt(m, tokens, embeds);
  c.metric = metricOf(logits, answer, wrong);
  c.logitScale = logits.select(1, -1).to(at::kDouble).std().item<double>();
  return c;
}

SweepShape shapeOf(const HookedTransformer& m, const PatchingRequest& r) {
  const auto& c = m.config();
  return {c.n_layers, c.n_heads, c.n_kv_heads, static_cast<int64_t>(r.clean.size())};
}

std::vector<LayerPatch> allPatchesOfLayer(SweepKind k, int64_t layer, const SweepShape& s) { return k.layout().patchesOfLayer(layer, s); }

std::vector<LayerHook> hooksOf(SweepKind k, const SweepShape& s) {
  std::vector<LayerHook> out;
  for (const LayerPatch& p : allPatchesOfLayer(k, 0, s))
    if (std::find(out.begin(), out.end(), p.hook) == out.end()) out.push_back(p.hook);
  return out;
}

void validate(const HookedTransformer& m, const PatchingRequest& r) {
  if (r.clean.empty() || r.corrupted.empty()) throw InputError("empty clean or corrupted prompt");
  if (r.clean.size() != r.corrupted.size())
    throw InputError("clean prompt has " + std::to_string(r.clean.size()) + " tokens but corrupted has " +
                     std::to_string(r.corrupted.size()) + "; patching needs equal lengths");
  const int64_t V = m.config().d_vocab;
  if (r.answer < 0 || r.answer >= V || r.wrong < 0 || r.wrong >= V)
    throw InputError("answer and wrong tokens must be single tokens of the vocabulary");
  if (r.answer == r.wrong) throw InputError("answer and wrong token are the same: the logit difference is always 0");
  if (r.maxBatch <= 0) throw InputError("maxBatch must be positive");
  if (r.cleanEmbeds.defined() != r.corruptedEmbeds.defined())
    throw InputError("clean and corrupted inputs must both be embeddings or both be tokens");
  for (const at::Tensor* e : {&r.cleanEmbeds, &r.corruptedEmbeds}) {
    if (!e->defined()) continue;
    if (e->dim() != 3 || e->size(0) != 1 || e->size(1) != static_cast<int64_t>(r.clean.size()) || e->size(2) != m.config().d_model)
      throw InputError("prompt embeddings must be [1, " + std::to_string(r.clean.size()) + ", " +
                       std::to_string(m.config().d_model) + "] (one row per token), got " + c10::str(e->sizes()));
  }
}

Prepared prepare(HookedTransformer& m, const PatchingRequest& r, const std::vector<LayerHook>& hooks) {
  validate(m, r);
  RunCache clean = runAndCache(m, r.clean, r.cleanEmbeds, r.answer, r.wrong, hooks);
  RunCache corrupted = runAndCache(m, r.corrupted, r.corruptedEmbeds, r.answer, r.wrong, hooks);
  const bool denoise = r.direction == PatchDirection::Denoising;
  Prepared p;
  p.result = emptyResult(m, r, clean.metric, corrupted.metric, clean.logitScale);
  p.target = denoise ? std::move(corrupted) : std::move(clean);
  p.source = denoise ? std::move(clean) : std::move(corrupted);
  return p;
}

PatchingResult emptyResult(const HookedTransformer& m, const PatchingRequest& r, double cleanMetric, double corruptedMetric,
                           double logitScale) {
  PatchingResult res;
  res.sweep = r.sweep;
  res.direction = r.direction;
  res.gridAxes = r.sweep.layout().axes(shapeOf(m, r));
  std::vector<int64_t> shape;
  for (const SweepAxis& a : res.gridAxes) res.axes.push_back(a.name), shape.push_back(a.size);
  res.cleanMetric = cleanMetric;
  res.corruptedMetric = corruptedMetric;
  res.grid = at::zeros(shape, at::kDouble);
  res.forwards = 2;
  judgeGap(res, logitScale);
  return res;
}

void judgeGap(PatchingResult& r, double logitScale) {
  r.logitScale = logitScale;
  const double gap = std::abs(r.cleanMetric - r.corruptedMetric);
  if (gap < kSmallGapFraction * logitScale) {
    char text[256];
    std::snprintf(text, sizeof text,
                  "the clean-corrupted logit difference gap is %.3g, under %.0f%% of the logits' spread (%.3g): normalised values "
                  "divide small differences by it and may mislead; compare the raw metrics",
                  gap, 100 * kSmallGapFraction, logitScale);
    r.warnings.push_back(text);
  }
}

double normalise(double metric, const PatchingResult& r) {
  const double span = r.cleanMetric - r.corruptedMetric;
  return span == 0 ? 0.0 : (metric - r.corruptedMetric) / span;
}

namespace {
// Where a hook's activation keeps positions and heads (-1: none), from its axis names.
std::pair<int64_t, int64_t> posAndHeadAxes(LayerHook hook) {
  const auto names = hookAxes(layerHookSuffix(hook));
  int64_t pos = -1, head = -1;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "pos" || names[i] == "q_pos") pos = static_cast<int64_t>(i);
    if (names[i] == "head" || names[i] == "kv_head") head = static_cast<int64_t>(i);
  }
  return {pos, head};
}
}  // namespace

at::Tensor sliceOf(const LayerPatch& patch, const at::Tensor& row) {
  const auto [posAxis, headAxis] = posAndHeadAxes(patch.hook);
  // Select the later axis first, so that the earlier one's index stays valid.
  std::vector<std::pair<int64_t, int64_t>> picks;  // (axis of the row, index)
  if (patch.pos >= 0) picks.emplace_back(posAxis - 1, patch.pos);
  if (patch.head >= 0) picks.emplace_back(headAxis - 1, patch.head);
  std::sort(picks.rbegin(), picks.rend());
  at::Tensor slice = row;
  for (const auto& [axis, index] : picks) slice = slice.select(axis, index);
  return slice;
}

at::Tensor maskFor(LayerHook hook, const std::vector<LayerPatch>& rows, const at::Tensor& activation) {
  std::vector<int64_t> shape = activation.sizes().vec();
  shape[0] = static_cast<int64_t>(rows.size());
  shape.back() = 1;
  at::Tensor m = at::zeros(shape, at::TensorOptions().dtype(at::kBool));
  for (size_t b = 0; b < rows.size(); ++b)
    if (rows[b].hook == hook) sliceOf(rows[b], m[static_cast<int64_t>(b)]).fill_(true);
  return m.to(activation.device());
}

std::vector<HookHandle> installPatches(HookedTransformer& m, int layer, const std::vector<LayerPatch>& rows, const RunCache& source,
                                       const std::function<at::Tensor(const at::Tensor&)>& adjust) {
  auto& hooks = m.hooks();
  std::vector<HookHandle> hs;
  std::vector<LayerHook> seen;
  for (const LayerPatch& p : rows) {
    if (std::find(seen.begin(), seen.end(), p.hook) != seen.end()) continue;
    seen.push_back(p.hook);
    const at::Tensor& src = source.at(p.hook, layer);
    at::Tensor mask = maskFor(p.hook, rows, src);
    if (adjust) mask = adjust(mask);
    hs.push_back(hooks.add(hooks.idOf(layer, p.hook), [mask, src](at::Tensor& t, const HookContext&) { t = at::where(mask, src, t); }));
  }
  return hs;
}

}  // namespace headlab::patching

namespace headlab {

nlohmann::json PatchingResult::toJson(const std::vector<std::string>& tokenStrings) const {
  at::Tensor g = grid.to(at::kDouble).contiguous().cpu();
  std::vector<double> flat(g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  nlohmann::json j = {{"sweep", toString(sweep)},
                      {"method", method},
                      {"direction", direction == PatchDirection::Denoising ? "denoising" : "noising"},
                      {"metric", "logit_diff"},
                      {"normalisation", "0 = corrupted run, 1 = clean run"},
                      {"clean_metric", cleanMetric},
                      {"corrupted_metric", corruptedMetric},
                      {"axes", axes},
                      {"shape", g.sizes().vec()},
                      {"forwards", forwards},
                      {"values", flat}};
  if (!tokenStrings.empty()) j["pos_labels"] = tokenStrings;
  if (!warnings.empty()) j["warnings"] = warnings;
  return j;
}

}  // namespace headlab
