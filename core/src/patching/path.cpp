// Path patching (Wang et al., IOI): a sender head's effect on one receiver head through the
// receiver's query, key or value input only.
#include <c10/core/InferenceMode.h>

#include <limits>

#include "headlab/core/errors.h"
#include "patching_common.h"

namespace headlab {

PathInput pathInputFromString(const std::string& s) {
  if (s == "q") return PathInput::Q;
  if (s == "k") return PathInput::K;
  if (s == "v") return PathInput::V;
  throw InputError("unknown receiver input '" + s + "' (expected q, k or v)");
}

namespace {
using namespace patching;

// Step 1: the senders of layer sl on the batch (row h: sender head h from the source run, every
// other head frozen at the target run, MLPs recomputed); returns the receiver's input per row.
at::Tensor receiverInputs(HookedTransformer& m, const Prepared& p, int sl, int receiverLayer, LayerHook inputHook, int64_t slot) {
  const int64_t H = m.config().n_heads;
  at::Tensor senderMask = at::zeros({H, 1, H, 1}, at::TensorOptions().dtype(at::kBool));
  for (int64_t h = 0; h < H; ++h) senderMask[h][0][h].fill_(true);
  senderMask = senderMask.to(p.target.at(LayerHook::Z, sl).device());
  at::Tensor captured;
  auto& hooks = m.hooks();
  std::vector<HookHandle> hs;
  for (int l = sl; l < receiverLayer; ++l) {
    at::Tensor frozen = p.target.at(LayerHook::Z, l);
    at::Tensor src = l == sl ? p.source.at(LayerHook::Z, sl) : at::Tensor();
    hs.push_back(hooks.add(hooks.idOf(l, LayerHook::Z), [frozen, src, senderMask](at::Tensor& z, const HookContext&) {
      at::Tensor f = frozen.expand_as(z);
      z = src.defined() ? at::where(senderMask, src.expand_as(z), f) : f.clone();
    }));
  }
  hs.push_back(hooks.add(hooks.idOf(receiverLayer, inputHook),
                         [&captured, slot](at::Tensor& a, const HookContext&) { captured = a.select(2, slot).clone(); }));
  at::Tensor resid = p.target.at(LayerHook::ResidPre, sl).expand({H, -1, -1}).clone();
  for (int l = sl; l <= receiverLayer; ++l) resid = m.block(l, resid);  // stops being useful after the capture
  return captured;
}
}  // namespace

PatchingResult patchPath(HookedTransformer& m, const PatchingRequest& r, int receiverLayer, int receiverHead, PathInput input,
                         const Progress& progress) {
  c10::InferenceMode guard;
  const auto& c = m.config();
  if (receiverLayer < 1 || receiverLayer >= c.n_layers)
    throw InputError("receiver layer " + std::to_string(receiverLayer) + " must be in [1, " + std::to_string(c.n_layers) + ")");
  if (receiverHead < 0 || receiverHead >= c.n_heads)
    throw InputError("receiver head " + std::to_string(receiverHead) + " out of range [0, " + std::to_string(c.n_heads) + ")");
  PatchingRequest heads = r;
  heads.sweep = SweepKind::Heads;
  Prepared p = prepare(m, heads, {LayerHook::Z});
  PatchingResult res = std::move(p.result);
  res.method = std::string("path-") + (input == PathInput::Q ? "q" : input == PathInput::K ? "k" : "v");
  res.axes = {"sender_layer", "sender_head"};
  res.gridAxes[0].name = "sender_layer", res.gridAxes[1].name = "sender_head";
  res.grid.fill_(std::numeric_limits<double>::quiet_NaN());
  const int64_t H = c.n_heads;
  const LayerHook inputHook = input == PathInput::Q ? LayerHook::Q : input == PathInput::K ? LayerHook::K : LayerHook::V;
  // The receiver's slot in that activation: query head, or its kv head for K and V.
  const int64_t slot = input == PathInput::Q ? receiverHead : receiverHead / c.groupSize();
  auto& hooks = m.hooks();
  for (int sl = 0; sl < receiverLayer; ++sl) {
    at::Tensor captured = receiverInputs(m, p, sl, receiverLayer, inputHook, slot);
    // Step 2: the target run with only the receiver's input replaced, per sender row.
    at::Tensor metrics;
    {
      auto h = hooks.add(hooks.idOf(receiverLayer, inputHook), [&captured, slot](at::Tensor& a, const HookContext&) {
        a = a.clone();
        a.select(2, slot).copy_(captured);
      });
      at::Tensor resid = p.target.at(LayerHook::ResidPre, receiverLayer).expand({H, -1, -1}).clone();
      metrics = metricsOf(m.forwardFrom(receiverLayer, resid, true), r.answer, r.wrong).cpu();
    }
    res.forwards += 2;
    for (int64_t h = 0; h < H; ++h) res.grid[sl][h] = normalise(metrics[h].item<double>(), res);
    if (progress && !progress(static_cast<double>(sl + 1) / receiverLayer, "senders of layer " + std::to_string(sl))) throw CancelledError();
  }
  return res;
}

}  // namespace headlab
