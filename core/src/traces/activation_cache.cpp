#include "headlab/core/activation_cache.h"

#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"

namespace headlab {

namespace {
int headAxis(const std::vector<std::string>& axes) {
  for (size_t i = 0; i < axes.size(); ++i)
    if (axes[i] == "head" || axes[i] == "kv_head") return static_cast<int>(i);
  return -1;
}
int posAxis(const std::vector<std::string>& axes) {
  for (size_t i = 0; i < axes.size(); ++i)
    if (axes[i] == "pos" || axes[i] == "q_pos") return static_cast<int>(i);
  return -1;
}
}  // namespace

uint64_t estimateCaptureBytes(const HookedTransformer& model, const CaptureSpec& spec, int64_t pos) {
  const auto& c = model.config();
  uint64_t total = 0;
  for (const auto& h : spec.hooks) {
    uint64_t n = 1;
    for (const auto& a : hookAxes(h)) {
      if (a == "pos" || a == "q_pos") n *= spec.positions.empty() ? pos : spec.positions.size();
      else if (a == "k_pos") n *= pos;
      else if (a == "head") n *= spec.heads.empty() ? c.n_heads : spec.heads.size();
      else if (a == "kv_head") n *= spec.heads.empty() ? c.n_kv_heads : spec.heads.size();
      else if (a == "d_head") n *= c.d_head;
      else if (a == "d_model") n *= c.d_model;
      else if (a == "d_mlp") n *= c.d_mlp;
    }
    total += n * 4;
  }
  return total;
}

std::map<std::string, at::Tensor> captureActivations(HookedTransformer& model, const std::vector<int64_t>& tokens, const CaptureSpec& spec) {
  c10::InferenceMode guard;
  const int64_t T = static_cast<int64_t>(tokens.size());
  for (int64_t p : spec.positions)
    if (p < 0 || p >= T) throw InputError("position " + std::to_string(p) + " out of range [0, " + std::to_string(T) + ")");
  std::map<std::string, at::Tensor> out;
  std::vector<HookHandle> hs;
  for (const auto& name : spec.hooks) {
    const auto axes = hookAxes(name);
    const int ha = headAxis(axes), pa = posAxis(axes);
    const int64_t limit = ha >= 0 && axes[ha] == "kv_head" ? model.config().n_kv_heads : model.config().n_heads;
    for (int64_t h : spec.heads)
      if (ha >= 0 && (h < 0 || h >= limit))
        throw InputError("head " + std::to_string(h) + " out of range [0, " + std::to_string(limit) + ") for " + name);
    hs.push_back(model.hooks().add(name, [&out, &spec, name, ha, pa](at::Tensor& a, const HookContext&) {
      at::Tensor t = a;
      auto opt = at::TensorOptions().dtype(at::kLong).device(t.device());
      if (ha >= 0 && !spec.heads.empty()) t = t.index_select(ha, at::tensor(spec.heads, opt));
      if (pa >= 0 && !spec.positions.empty()) t = t.index_select(pa, at::tensor(spec.positions, opt));
      out[name] = t.to(at::kFloat).clone();  // only the selection is kept
    }));
  }
  model.forward(at::tensor(tokens, at::kLong).unsqueeze(0));
  return out;
}

at::Tensor meanActivation(HookedTransformer& model, const std::string& hook, const std::vector<std::vector<int64_t>>& prompts,
                          bool perPosition) {
  if (prompts.empty()) throw InputError("mean ablation needs at least one prompt");
  at::Tensor sum;
  for (const auto& p : prompts) {
    if (perPosition && p.size() != prompts.front().size())
      throw InputError("a per-position mean needs prompts of equal length (" + std::to_string(prompts.front().size()) + " vs " +
                       std::to_string(p.size()) + " tokens)");
    at::Tensor a = captureActivations(model, p, {{hook}, {}, {}}).at(hook);  // [1, pos, ...]
    const int pa = posAxis(hookAxes(hook));
    if (!perPosition && pa >= 0) a = a.mean(pa, true);
    sum = sum.defined() ? sum + a : a;
  }
  return sum / static_cast<double>(prompts.size());
}

}  // namespace headlab
