#include "headlab/core/logit_lens.h"

#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"

namespace headlab {

namespace {
at::Tensor asBatch(const std::vector<int64_t>& ids) {
  if (ids.empty()) throw InputError("empty prompt: no tokens to run");
  return at::tensor(ids, at::kLong).unsqueeze(0);
}
}  // namespace

LogitLens logitLens(HookedTransformer& model, const std::vector<int64_t>& ids, const LensOptions& o) {
  c10::InferenceMode guard;
  const auto& c = model.config();
  const int64_t T = static_cast<int64_t>(ids.size()), L = c.n_layers;
  if (o.topK < 1) throw InputError("lens: top-k must be at least 1, got " + std::to_string(o.topK));
  if (o.follow >= c.d_vocab) throw InputError("lens: token id " + std::to_string(o.follow) + " out of range [0, " + std::to_string(c.d_vocab) + ")");
  LogitLens out;
  out.positions = o.positions;
  if (out.positions.empty())
    for (int64_t p = 0; p < T; ++p) out.positions.push_back(p);
  for (int64_t p : out.positions)
    if (p < 0 || p >= T) throw InputError("lens: position " + std::to_string(p) + " out of range [0, " + std::to_string(T) + ")");
  std::vector<at::Tensor> resid(static_cast<size_t>(L));
  {
    std::vector<HookHandle> hs;
    for (int l = 0; l < L; ++l)
      hs.push_back(model.hooks().add(model.hooks().idOf(l, LayerHook::ResidPost), [&resid, l](at::Tensor& t, const HookContext&) { resid[l] = t.clone(); }));
    model.forward(asBatch(ids));
  }
  const int64_t k = std::min<int64_t>(o.topK, c.d_vocab);
  const at::Tensor index = at::tensor(out.positions, at::kLong).to(model.device());
  std::vector<at::Tensor> ids_, probs_, followProb, followRank;
  for (int64_t l = 0; l < L; ++l) {
    // One layer at a time: [positions, vocab] is the most this holds.
    at::Tensor probs = at::softmax(model.unembed(resid[l].index_select(1, index))[0].to(at::kFloat), -1);
    auto [p, i] = probs.topk(k, -1);
    probs_.push_back(p.cpu()), ids_.push_back(i.cpu());
    if (o.follow >= 0) {
      at::Tensor mine = probs.select(-1, o.follow);
      followProb.push_back(mine.cpu());
      followRank.push_back((probs > mine.unsqueeze(-1)).sum(-1).cpu());
    }
  }
  out.topIds = at::stack(ids_), out.topProbs = at::stack(probs_);
  if (o.follow >= 0) out.followProb = at::stack(followProb), out.followRank = at::stack(followRank);
  return out;
}

LogitAttribution directLogitAttribution(HookedTransformer& model, const std::vector<int64_t>& ids, int64_t position, int64_t target,
                                        int64_t wrong) {
  c10::InferenceMode guard;
  const auto& c = model.config();
  const auto& w = model.weights();
  const int64_t T = static_cast<int64_t>(ids.size()), L = c.n_layers, H = c.n_heads;
  if (c.post_norms) throw InputError("direct logit attribution: this model normalises each attention and MLP output (post-norms), so heads do not add up linearly");
  if (c.final_softcap > 0) throw InputError("direct logit attribution: this model soft-caps its logits (final_logit_softcapping), which is not linear");
  if (position < 0) position += T;
  if (position < 0 || position >= T) throw InputError("position out of range [0, " + std::to_string(T) + ")");
  for (int64_t id : {target, wrong})
    if (id >= c.d_vocab || (id < 0 && id != wrong)) throw InputError("token id " + std::to_string(id) + " out of range [0, " + std::to_string(c.d_vocab) + ")");
  // Every component's write to the residual stream at `position`, in float64.
  auto atPos = [position](const at::Tensor& t) { return t[0][position].to(at::kCPU, at::kDouble); };
  at::Tensor embed, last;
  std::vector<at::Tensor> results(static_cast<size_t>(L)), attnOut(static_cast<size_t>(L)), mlpOut(static_cast<size_t>(L));
  at::Tensor logits;
  {
    std::vector<HookHandle> hs;
    auto& hooks = model.hooks();
    hs.push_back(hooks.add(hooks.idOf(GlobalHook::Embed), [&](at::Tensor& t, const HookContext&) { embed = atPos(t); }));
    hs.push_back(hooks.add(hooks.idOf(GlobalHook::PosEmbed), [&](at::Tensor& t, const HookContext&) { embed = embed + atPos(t); }));
    for (int l = 0; l < L; ++l) {
      hs.push_back(hooks.add(hooks.idOf(l, LayerHook::Result), [&, l](at::Tensor& t, const HookContext&) { results[l] = atPos(t); }));
      hs.push_back(hooks.add(hooks.idOf(l, LayerHook::AttnOut), [&, l](at::Tensor& t, const HookContext&) { attnOut[l] = atPos(t); }));
      hs.push_back(hooks.add(hooks.idOf(l, LayerHook::MlpOut), [&, l](at::Tensor& t, const HookContext&) { mlpOut[l] = atPos(t); }));
    }
    hs.push_back(hooks.add(hooks.idOf(L - 1, LayerHook::ResidPost), [&](at::Tensor& t, const HookContext&) { last = atPos(t); }));
    logits = model.forward(asBatch(ids))[0][position].to(at::kCPU, at::kDouble);
  }
  // The direction the final norm's output is read along: W_U[target] (- W_U[wrong]), times the norm's weight.
  at::Tensor unembed = w.unembed.to(at::kCPU, at::kDouble);
  at::Tensor direction = unembed[target] - (wrong >= 0 ? unembed[wrong] : at::zeros_like(unembed[target]));
  at::Tensor normWeight = w.lnf_w.to(at::kCPU, at::kDouble) + c.norm_weight_offset;
  const bool layerNorm = c.norm == NormKind::LayerNorm;
  at::Tensor centred = layerNorm ? last - last.mean() : last;
  LogitAttribution r;
  r.scale = std::sqrt(centred.pow(2).mean().item<double>() + c.norm_eps);
  const at::Tensor read = normWeight * direction / r.scale;
  // With the scale frozen the final norm is linear: centre each part (LayerNorm) and project it.
  auto through = [&](const at::Tensor& part) { return ((layerNorm ? part - part.mean(-1, true) : part) * read).sum(-1); };
  r.embed = through(embed).item<double>();
  r.heads = at::zeros({L, H}, at::kDouble), r.mlps = at::zeros({L}, at::kDouble);
  for (int64_t l = 0; l < L; ++l) {
    r.heads[l] = through(results[l]);
    r.mlps[l] = through(mlpOut[l]).item<double>();
    r.biases += through(attnOut[l] - results[l].sum(0)).item<double>();  // the attention output bias
  }
  if (w.lnf_b.defined()) r.biases += (w.lnf_b.to(at::kCPU, at::kDouble) * direction).sum().item<double>();
  if (w.unembed_b.defined()) {
    at::Tensor b = w.unembed_b.to(at::kCPU, at::kDouble);
    r.biases += b[target].item<double>() - (wrong >= 0 ? b[wrong].item<double>() : 0.0);
  }
  r.logit = logits[target].item<double>() - (wrong >= 0 ? logits[wrong].item<double>() : 0.0);
  return r;
}

}  // namespace headlab
