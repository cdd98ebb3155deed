#include "headlab/core/patching.h"

#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"

#include <iterator>
#include <limits>
#include <string>
#include <tuple>

namespace headlab {

namespace {
constexpr const char* kSweepNames[] = {"heads", "head-pos", "resid-pos", "layer-pos"};

// Activations of one run that the sweeps patch: per layer, batch 1.
struct RunCache {
  std::vector<at::Tensor> residPre;  // [1, pos, d_model]
  std::vector<at::Tensor> z;         // [1, pos, head, d_head]
  std::vector<at::Tensor> attnOut;   // [1, pos, d_model]
  std::vector<at::Tensor> mlpOut;    // [1, pos, d_model]
  double metric = 0;
};

double metricOf(const at::Tensor& logits, int64_t answer, int64_t wrong) {
  at::Tensor last = logits.select(1, -1);  // [batch, d_vocab]
  return (last.select(1, answer) - last.select(1, wrong)).item<double>();
}

at::Tensor metricsOf(const at::Tensor& logits, int64_t answer, int64_t wrong) {
  at::Tensor last = logits.select(1, -1).to(at::kDouble);
  return last.select(1, answer) - last.select(1, wrong);  // [batch]
}

// The logits of one prompt: its tokens embedded, or its given layer-0 input.
at::Tensor runPrompt(HookedTransformer& m, const std::vector<int64_t>& tokens, const at::Tensor& embeds) {
  return embeds.defined() ? m.forwardFrom(0, embeds) : m.forward(at::tensor(tokens, at::kLong).unsqueeze(0));
}

RunCache runAndCache(HookedTransformer& m, const std::vector<int64_t>& tokens, const at::Tensor& embeds, int64_t answer,
                     int64_t wrong) {
  const int L = static_cast<int>(m.config().n_layers);
  RunCache c;
  c.residPre.resize(L), c.z.resize(L), c.attnOut.resize(L), c.mlpOut.resize(L);
  std::vector<HookHandle> hs;
  auto& H = m.hooks();
  for (int l = 0; l < L; ++l) {
    hs.push_back(H.add(H.idOf(l, LayerHook::ResidPre), [&c, l](at::Tensor& t, const HookContext&) { c.residPre[l] = t.clone(); }));
    hs.push_back(H.add(H.idOf(l, LayerHook::Z), [&c, l](at::Tensor& t, const HookContext&) { c.z[l] = t.clone(); }));
    hs.push_back(H.add(H.idOf(l, LayerHook::AttnOut), [&c, l](at::Tensor& t, const HookContext&) { c.attnOut[l] = t.clone(); }));
    hs.push_back(H.add(H.idOf(l, LayerHook::MlpOut), [&c, l](at::Tensor& t, const HookContext&) { c.mlpOut[l] = t.clone(); }));
  }
  c.metric = metricOf(runPrompt(m, tokens, embeds), answer, wrong);
  return c;
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

std::vector<std::string> axesOf(SweepKind k) {
  switch (k) {
    case SweepKind::Heads: return {"layer", "head"};
    case SweepKind::HeadPos: return {"layer", "head", "pos"};
    case SweepKind::ResidPos: return {"layer", "pos"};
    case SweepKind::LayerPos: return {"component", "layer", "pos"};
  }
  return {};
}

std::vector<int64_t> gridShape(const HookedTransformer& m, SweepKind k, int64_t T) {
  const int64_t L = m.config().n_layers, H = m.config().n_heads;
  switch (k) {
    case SweepKind::Heads: return {L, H};
    case SweepKind::HeadPos: return {L, H, T};
    case SweepKind::ResidPos: return {L, T};
    case SweepKind::LayerPos: return {2, L, T};
  }
  return {};
}

// Patches per layer and how each is addressed, for the sweeps that restart at a layer.
struct LayerPatch {
  int64_t head = -1, pos = -1;  // -1 = all
  int component = 0;            // LayerPos: 0 attn_out, 1 mlp_out
};

std::vector<LayerPatch> patchesOfLayer(SweepKind k, int64_t H, int64_t T) {
  std::vector<LayerPatch> out;
  switch (k) {
    case SweepKind::Heads:
      for (int64_t h = 0; h < H; ++h) out.push_back({h, -1, 0});
      break;
    case SweepKind::HeadPos:
      for (int64_t h = 0; h < H; ++h)
        for (int64_t p = 0; p < T; ++p) out.push_back({h, p, 0});
      break;
    case SweepKind::ResidPos:
      for (int64_t p = 0; p < T; ++p) out.push_back({-1, p, 0});
      break;
    case SweepKind::LayerPos:
      for (int c = 0; c < 2; ++c)
        for (int64_t p = 0; p < T; ++p) out.push_back({-1, p, c});
      break;
  }
  return out;
}

// Mask selecting, for batch row b, what patch b replaces: shapes broadcast against the activation.
at::Tensor maskFor(SweepKind k, const std::vector<LayerPatch>& patches, int64_t T, int64_t H, at::Device dev) {
  const int64_t B = static_cast<int64_t>(patches.size());
  if (k == SweepKind::Heads || k == SweepKind::HeadPos) {
    at::Tensor m = at::zeros({B, T, H, 1}, at::TensorOptions().dtype(at::kBool));
    for (int64_t b = 0; b < B; ++b) {
      if (patches[b].pos < 0) m[b].select(1, patches[b].head).fill_(true);
      else m[b][patches[b].pos][patches[b].head].fill_(true);
    }
    return m.to(dev);
  }
  at::Tensor m = at::zeros({B, T, 1}, at::TensorOptions().dtype(at::kBool));
  for (int64_t b = 0; b < B; ++b) m[b][patches[b].pos].fill_(true);
  return m.to(dev);
}

void storeResult(at::Tensor& grid, SweepKind k, int64_t layer, const LayerPatch& p, double value) {
  switch (k) {
    case SweepKind::Heads: grid[layer][p.head] = value; break;
    case SweepKind::HeadPos: grid[layer][p.head][p.pos] = value; break;
    case SweepKind::ResidPos: grid[layer][p.pos] = value; break;
    case SweepKind::LayerPos: grid[p.component][layer][p.pos] = value; break;
  }
}

PatchingResult prepare(HookedTransformer& m, const PatchingRequest& r, RunCache& target, RunCache& source, RunCache& clean,
                       RunCache& corrupted) {
  validate(m, r);
  clean = runAndCache(m, r.clean, r.cleanEmbeds, r.answer, r.wrong);
  corrupted = runAndCache(m, r.corrupted, r.corruptedEmbeds, r.answer, r.wrong);
  const bool denoise = r.direction == PatchDirection::Denoising;
  target = denoise ? corrupted : clean;
  source = denoise ? clean : corrupted;
  PatchingResult res;
  res.sweep = r.sweep;
  res.direction = r.direction;
  res.axes = axesOf(r.sweep);
  res.cleanMetric = clean.metric;
  res.corruptedMetric = corrupted.metric;
  res.grid = at::zeros(gridShape(m, r.sweep, static_cast<int64_t>(r.clean.size())), at::kDouble);
  res.forwards = 2;
  return res;
}

double normalise(double metric, const PatchingResult& r) {
  const double span = r.cleanMetric - r.corruptedMetric;
  return span == 0 ? 0.0 : (metric - r.corruptedMetric) / span;
}
}  // namespace

const char* toString(SweepKind k) { return kSweepNames[static_cast<int>(k)]; }

SweepKind sweepKindFromString(const std::string& s) {
  for (size_t i = 0; i < std::size(kSweepNames); ++i)
    if (s == kSweepNames[i]) return static_cast<SweepKind>(i);
  throw InputError("unknown sweep '" + s + "' (expected " + sweepKindList(", ", " or ") + ")");
}

std::string sweepKindList(const std::string& separator, const std::string& last) {
  std::string out;
  const size_t n = std::size(kSweepNames);
  for (size_t i = 0; i < n; ++i) out += (i == 0 ? "" : i + 1 == n && !last.empty() ? last : separator) + kSweepNames[i];
  return out;
}

namespace {
// The hooks that patch layer l. zMask (heads sweeps) or attnMask / mlpMask (layer-pos) select,
// per batch row, what is replaced by the source run's activation; undefined masks install nothing.
std::vector<HookHandle> installPatches(HookedTransformer& m, int l, const RunCache& source, const at::Tensor& zMask,
                                       const at::Tensor& attnMask, const at::Tensor& mlpMask) {
  auto& hooks = m.hooks();
  std::vector<HookHandle> hs;
  auto add = [&](LayerHook where, const at::Tensor& mask, const at::Tensor& src) {
    if (mask.defined())
      hs.push_back(hooks.add(hooks.idOf(l, where), [mask, src](at::Tensor& t, const HookContext&) { t = at::where(mask, src, t); }));
  };
  add(LayerHook::Z, zMask, source.z[l]);
  add(LayerHook::AttnOut, attnMask, source.attnOut[l]);
  add(LayerHook::MlpOut, mlpMask, source.mlpOut[l]);
  return hs;
}

// Splits a layer-pos mask into the rows that patch attn_out and those that patch mlp_out.
std::pair<at::Tensor, at::Tensor> splitComponents(const at::Tensor& mask, const std::vector<LayerPatch>& patches) {
  at::Tensor attn = mask.clone(), mlp = mask.clone();
  for (size_t b = 0; b < patches.size(); ++b) (patches[b].component == 1 ? attn : mlp)[static_cast<int64_t>(b)].fill_(false);
  return {attn, mlp};
}

// Every layer runs once: the rows patched at earlier layers flow on, and layer l's own patches
// join the batch there (their rows start from the cached residual stream of layer l).
void runPipelined(HookedTransformer& m, const PatchingRequest& r, const RunCache& target, const RunCache& source,
                  PatchingResult& res, const PatchProgress& progress) {
  const int64_t L = m.config().n_layers, H = m.config().n_heads, T = static_cast<int64_t>(r.clean.size());
  const auto perLayer = patchesOfLayer(r.sweep, H, T);
  const int64_t B = static_cast<int64_t>(perLayer.size());
  at::Tensor resid;  // [rows so far, pos, d_model]
  for (int64_t l = 0; l < L; ++l) {
    const int64_t before = resid.defined() ? resid.size(0) : 0;
    at::Tensor fresh = target.residPre[l].expand({B, -1, -1}).clone();
    at::Tensor mask = maskFor(r.sweep, perLayer, T, H, fresh.device());  // [B, ...] for the new rows
    if (r.sweep == SweepKind::ResidPos) fresh = at::where(mask, source.residPre[l], fresh);
    resid = before ? at::cat({resid, fresh}) : fresh;
    // Rows that joined earlier are not patched again: pad the mask with false rows in front.
    auto padded = [&](const at::Tensor& m0) {
      if (!before) return m0;
      std::vector<int64_t> shape = m0.sizes().vec();
      shape[0] = before;
      return at::cat({at::zeros(shape, m0.options()), m0});
    };
    const int li = static_cast<int>(l);
    at::Tensor zMask, attnMask, mlpMask;
    if (r.sweep == SweepKind::Heads || r.sweep == SweepKind::HeadPos) zMask = mask;
    if (r.sweep == SweepKind::LayerPos) std::tie(attnMask, mlpMask) = splitComponents(mask, perLayer);
    if (l == L - 1 && before > 0) {
      // The last layer: rows that joined earlier need only the last position (no hooks here);
      // the last layer's own patches run in full with their hooks.
      at::Tensor old = m.block(li, resid.slice(0, 0, before), nullptr, 0, /*lastRowOnly=*/true);
      at::Tensor mine;
      {
        auto hs = installPatches(m, li, source, zMask, attnMask, mlpMask);
        mine = m.block(li, fresh).slice(1, T - 1);
      }
      resid = at::cat({old, mine});
      ++res.forwards;
      break;
    }
    auto pad = [&](const at::Tensor& t) { return t.defined() ? padded(t) : t; };
    auto hs = installPatches(m, li, source, pad(zMask), pad(attnMask), pad(mlpMask));
    resid = m.block(li, resid);
    ++res.forwards;
    if (progress && !progress(static_cast<double>(l + 1) / L)) throw CancelledError();
  }
  at::Tensor metrics = metricsOf(m.unembed(resid.slice(1, resid.size(1) - 1)), r.answer, r.wrong).cpu();  // [L * B]
  for (int64_t l = 0; l < L; ++l)
    for (int64_t b = 0; b < B; ++b) storeResult(res.grid, r.sweep, l, perLayer[b], normalise(metrics[l * B + b].item<double>(), res));
}
}  // namespace

PatchingResult patchBatched(HookedTransformer& m, const PatchingRequest& r, const PatchProgress& progress) {
  c10::InferenceMode guard;
  RunCache target, source, clean, corrupted;
  PatchingResult res = prepare(m, r, target, source, clean, corrupted);
  res.method = "exact-batched";
  const int64_t L = m.config().n_layers, H = m.config().n_heads, T = static_cast<int64_t>(r.clean.size());
  const auto all = patchesOfLayer(r.sweep, H, T);
  if (r.pipeline && L * static_cast<int64_t>(all.size()) <= r.maxRows) {
    runPipelined(m, r, target, source, res, progress);
    return res;
  }
  for (int64_t l = 0; l < L; ++l) {
    for (size_t begin = 0; begin < all.size(); begin += static_cast<size_t>(r.maxBatch)) {
      std::vector<LayerPatch> chunk(all.begin() + static_cast<long>(begin),
                                    all.begin() + static_cast<long>(std::min(all.size(), begin + static_cast<size_t>(r.maxBatch))));
      const int64_t B = static_cast<int64_t>(chunk.size());
      at::Tensor mask = maskFor(r.sweep, chunk, T, H, target.residPre[l].device());
      at::Tensor resid = target.residPre[l].expand({B, -1, -1}).clone();
      at::Tensor zMask, attnMask, mlpMask;
      if (r.sweep == SweepKind::Heads || r.sweep == SweepKind::HeadPos) zMask = mask;
      if (r.sweep == SweepKind::LayerPos) std::tie(attnMask, mlpMask) = splitComponents(mask, chunk);
      if (r.sweep == SweepKind::ResidPos) resid = at::where(mask, source.residPre[l], resid);
      auto hs = installPatches(m, static_cast<int>(l), source, zMask, attnMask, mlpMask);
      at::Tensor metrics = metricsOf(m.forwardFrom(static_cast<int>(l), resid, true), r.answer, r.wrong).cpu();
      ++res.forwards;
      for (int64_t b = 0; b < B; ++b) storeResult(res.grid, r.sweep, l, chunk[b], normalise(metrics[b].item<double>(), res));
    }
    if (progress && !progress(static_cast<double>(l + 1) / L)) throw CancelledError();
  }
  return res;
}

PatchingResult patchPerForward(HookedTransformer& m, const PatchingRequest& r, const PatchProgress& progress) {
  c10::InferenceMode guard;
  RunCache target, source, clean, corrupted;
  PatchingResult res = prepare(m, r, target, source, clean, corrupted);
  res.method = "exact-per-patch";
  const int64_t L = m.config().n_layers, H = m.config().n_heads, T = static_cast<int64_t>(r.clean.size());
  const bool denoise = r.direction == PatchDirection::Denoising;
  const auto& tokens = denoise ? r.corrupted : r.clean;
  const at::Tensor& embeds = denoise ? r.corruptedEmbeds : r.cleanEmbeds;
  const at::Device device = m.device();
  auto& hooks = m.hooks();
  for (int64_t l = 0; l < L; ++l) {
    for (const LayerPatch& p : patchesOfLayer(r.sweep, H, T)) {
      at::Tensor mask = maskFor(r.sweep, {p}, T, H, device);
      std::vector<HookHandle> hs;
      const int li = static_cast<int>(l);
      LayerHook where = r.sweep == SweepKind::ResidPos ? LayerHook::ResidPre
                        : r.sweep == SweepKind::LayerPos ? (p.component == 0 ? LayerHook::AttnOut : LayerHook::MlpOut)
                                                         : LayerHook::Z;
      at::Tensor src = where == LayerHook::ResidPre ? source.residPre[l] : where == LayerHook::Z ? source.z[l]
                       : where == LayerHook::AttnOut ? source.attnOut[l] : source.mlpOut[l];
      hs.push_back(hooks.add(hooks.idOf(li, where), [mask, src](at::Tensor& a, const HookContext&) { a = at::where(mask, src, a); }));
      storeResult(res.grid, r.sweep, l, p, normalise(metricOf(runPrompt(m, tokens, embeds), r.answer, r.wrong), res));
      ++res.forwards;
    }
    if (progress && !progress(static_cast<double>(l + 1) / L)) throw CancelledError();
  }
  return res;
}

PathInput pathInputFromString(const std::string& s) {
  if (s == "q") return PathInput::Q;
  if (s == "k") return PathInput::K;
  if (s == "v") return PathInput::V;
  throw InputError("unknown receiver input '" + s + "' (expected q, k or v)");
}

PatchingResult patchPath(HookedTransformer& m, const PatchingRequest& r, int receiverLayer, int receiverHead, PathInput input,
                         const PatchProgress& progress) {
  c10::InferenceMode guard;
  const auto& c = m.config();
  if (receiverLayer < 1 || receiverLayer >= c.n_layers)
    throw InputError("receiver layer " + std::to_string(receiverLayer) + " must be in [1, " + std::to_string(c.n_layers) + ")");
  if (receiverHead < 0 || receiverHead >= c.n_heads)
    throw InputError("receiver head " + std::to_string(receiverHead) + " out of range [0, " + std::to_string(c.n_heads) + ")");
  RunCache target, source, clean, corrupted;
  PatchingResult res = prepare(m, r, target, source, clean, corrupted);
  res.method = std::string("path-") + (input == PathInput::Q ? "q" : input == PathInput::K ? "k" : "v");
  res.sweep = SweepKind::Heads;
  res.axes = {"sender_layer", "sender_head"};
  res.grid.fill_(std::numeric_limits<double>::quiet_NaN());
  const int64_t H = c.n_heads, T = static_cast<int64_t>(r.clean.size());
  const LayerHook inputHook = input == PathInput::Q ? LayerHook::Q : input == PathInput::K ? LayerHook::K : LayerHook::V;
  // The receiver's slot in that activation: query head, or its kv head for K and V.
  const int64_t slot = input == PathInput::Q ? receiverHead : receiverHead / c.groupSize();
  auto& hooks = m.hooks();
  for (int sl = 0; sl < receiverLayer; ++sl) {
    // Step 1: senders of layer sl on the batch; every other head frozen at the target run.
    at::Tensor senderMask = at::zeros({H, 1, H, 1}, at::TensorOptions().dtype(at::kBool));
    for (int64_t h = 0; h < H; ++h) senderMask[h][0][h].fill_(true);
    senderMask = senderMask.to(target.z[sl].device());
    at::Tensor captured;
    {
      std::vector<HookHandle> hs;
      for (int l = sl; l < receiverLayer; ++l) {
        at::Tensor frozen = target.z[l];
        at::Tensor src = l == sl ? source.z[sl] : at::Tensor();
        hs.push_back(hooks.add(hooks.idOf(l, LayerHook::Z), [frozen, src, senderMask](at::Tensor& z, const HookContext&) {
          at::Tensor f = frozen.expand_as(z);
          z = src.defined() ? at::where(senderMask, src.expand_as(z), f) : f.clone();
        }));
      }
      hs.push_back(hooks.add(hooks.idOf(receiverLayer, inputHook),
                             [&captured, slot](at::Tensor& a, const HookContext&) { captured = a.select(2, slot).clone(); }));
      at::Tensor resid = target.residPre[sl].expand({H, -1, -1}).clone();
      for (int l = sl; l <= receiverLayer; ++l) resid = m.block(l, resid);  // stops being useful after the capture
    }
    // Step 2: the target run with only the receiver's input replaced, per sender row.
    at::Tensor metrics;
    {
      auto h = hooks.add(hooks.idOf(receiverLayer, inputHook), [&captured, slot](at::Tensor& a, const HookContext&) {
        a = a.clone();
        a.select(2, slot).copy_(captured);
      });
      at::Tensor resid = target.residPre[receiverLayer].expand({H, -1, -1}).clone();
      metrics = metricsOf(m.forwardFrom(receiverLayer, resid, true), r.answer, r.wrong).cpu();
    }
    res.forwards += 2;
    for (int64_t h = 0; h < H; ++h) res.grid[sl][h] = normalise(metrics[h].item<double>(), res);
    if (progress && !progress(static_cast<double>(sl + 1) / receiverLayer)) throw CancelledError();
  }
  (void)T;
  return res;
}

PatchingResult patchAttribution(HookedTransformer& m, const PatchingRequest& r) {
  validate(m, r);
  RunCache clean;
  {
    c10::InferenceMode guard;
    clean = runAndCache(m, r.clean, r.cleanEmbeds, r.answer, r.wrong);
  }
  const int L = static_cast<int>(m.config().n_layers);
  // Corrupted run with a zero "probe" added to every patched activation: its gradient is
  // d metric / d activation along every path.
  c10::AutoGradMode grad(true);
  std::vector<at::Tensor> dResid(L), dZ(L), dAttn(L), dMlp(L), aResid(L), aZ(L), aAttn(L), aMlp(L);
  std::vector<HookHandle> hs;
  auto& hooks = m.hooks();
  auto probe = [&hooks, &hs](int l, LayerHook h, std::vector<at::Tensor>& delta, std::vector<at::Tensor>& value) {
    hs.push_back(hooks.add(hooks.idOf(l, h), [&delta, &value, l](at::Tensor& a, const HookContext&) {
      value[l] = a.detach().clone();
      delta[l] = at::zeros_like(a).requires_grad_(true);
      a = a + delta[l];
    }));
  };
  for (int l = 0; l < L; ++l) {
    probe(l, LayerHook::ResidPre, dResid, aResid);
    probe(l, LayerHook::Z, dZ, aZ);
    probe(l, LayerHook::AttnOut, dAttn, aAttn);
    probe(l, LayerHook::MlpOut, dMlp, aMlp);
  }
  at::Tensor logits = runPrompt(m, r.corrupted, r.corruptedEmbeds);
  at::Tensor metric = logits[0][-1][r.answer] - logits[0][-1][r.wrong];
  metric.backward();
  hs.clear();
  PatchingResult res;
  res.sweep = r.sweep;
  res.method = "attribution";
  res.direction = PatchDirection::Denoising;
  res.axes = axesOf(r.sweep);
  res.cleanMetric = clean.metric;
  res.corruptedMetric = metric.item<double>();
  res.forwards = 2;
  const double span = res.cleanMetric - res.corruptedMetric;
  auto est = [&](const at::Tensor& cleanA, const at::Tensor& corrA, const at::Tensor& delta) {
    return ((cleanA - corrA) * delta.grad()).to(at::kDouble);
  };
  std::vector<at::Tensor> rows;
  for (int l = 0; l < L; ++l) {
    switch (r.sweep) {
      case SweepKind::Heads: rows.push_back(est(clean.z[l], aZ[l], dZ[l]).sum({0, 1, 3})); break;        // [head]
      case SweepKind::HeadPos: rows.push_back(est(clean.z[l], aZ[l], dZ[l])[0].sum(-1).t()); break;      // [head, pos]
      case SweepKind::ResidPos: rows.push_back(est(clean.residPre[l], aResid[l], dResid[l])[0].sum(-1)); break;  // [pos]
      case SweepKind::LayerPos:
        rows.push_back(at::stack({est(clean.attnOut[l], aAttn[l], dAttn[l])[0].sum(-1), est(clean.mlpOut[l], aMlp[l], dMlp[l])[0].sum(-1)}));
        break;
    }
  }
  at::Tensor grid = at::stack(rows);  // [layer, ...]
  if (r.sweep == SweepKind::LayerPos) grid = grid.transpose(0, 1);  // [component, layer, pos]
  res.grid = (span == 0 ? grid * 0 : grid / span).detach().cpu().contiguous();
  return res;
}

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
  return j;
}

}  // namespace headlab
