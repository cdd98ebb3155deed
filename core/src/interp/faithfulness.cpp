#include "headlab/core/faithfulness.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <cstdio>

#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"

namespace headlab {

namespace {
// [pos, vocab] float32 logits on the CPU.
at::Tensor logitsOf(HookedTransformer& m, const std::vector<int64_t>& ids) {
  return m.forward(at::tensor(ids, at::kLong).unsqueeze(0).to(m.device()))[0].to(at::kCPU, at::kFloat);
}

// "max |Δ| 3.1e-07 at position 4"
std::string worstText(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor d = (a - b).abs();
  const int64_t flat = d.flatten().argmax().item<int64_t>();
  char text[96];
  std::snprintf(text, sizeof text, "max |Δlogit| %.3g at position %lld", d.flatten()[flat].item<double>(),
                static_cast<long long>(flat / a.size(1)));
  return text;
}

FaithfulnessCheck bitIdentical(const std::string& name, const at::Tensor& got, const at::Tensor& expected, const std::string& what) {
  FaithfulnessCheck c{name, at::equal(got, expected), "", {{"max_abs_diff", (got - expected).abs().max().item<double>()}}};
  c.detail = what + (c.passed ? ": bit-identical logits" : ": logits differ, " + worstText(got, expected));
  return c;
}

FaithfulnessCheck observedHooks(HookedTransformer& m, const std::vector<int64_t>& ids, const at::Tensor& plain) {
  // A pass-through observer on every hook point but hook_result, which switches the attention output
  // to the per-head sum when hooked (checked with a tolerance below).
  std::vector<HookHandle> hs;
  int64_t calls = 0;
  for (const auto& name : m.hooks().names())
    if (name.find("hook_result") == std::string::npos)
      hs.push_back(m.hooks().add(name, [&calls](at::Tensor&, const HookContext&) { ++calls; }));
  const at::Tensor observed = logitsOf(m, ids);
  FaithfulnessCheck c = bitIdentical("hooks_observed", observed, plain,
                                     "observing " + std::to_string(hs.size()) + " hook points (" + std::to_string(calls) + " calls)");
  c.values["hook_points"] = hs.size();
  return c;
}

FaithfulnessCheck perHeadResult(HookedTransformer& m, const std::vector<int64_t>& ids, const at::Tensor& plain) {
  std::vector<HookHandle> hs;
  for (int l = 0; l < m.config().n_layers; ++l) hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Result), [](at::Tensor&, const HookContext&) {}));
  const at::Tensor viaHeads = logitsOf(m, ids);
  const double diff = (viaHeads - plain).abs().max().item<double>(), tol = 1e-4 * std::max(1.0, plain.abs().max().item<double>());
  return {"hook_result_path", diff <= tol,
          "observing attn.hook_result sums the heads' outputs one by one: " + worstText(viaHeads, plain) + (diff <= tol ? " (within " : " (above ") +
              std::to_string(tol) + ")",
          {{"max_abs_diff", diff}, {"tolerance", tol}}};
}

FaithfulnessCheck kvCache(HookedTransformer& m, const std::vector<int64_t>& ids, const at::Tensor& plain) {
  KvCache cache;
  const size_t half = ids.size() / 2;
  std::vector<at::Tensor> rows{m.forward(at::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + half), at::kLong).unsqueeze(0).to(m.device()), &cache)[0]};
  for (size_t i = half; i < ids.size(); ++i)
    rows.push_back(m.forward(at::tensor(std::vector<int64_t>{ids[i]}, at::kLong).unsqueeze(0).to(m.device()), &cache)[0]);
  const at::Tensor decoded = at::cat(rows).to(at::kCPU, at::kFloat);
  const double diff = (decoded - plain).abs().max().item<double>(), tol = 1e-4 * std::max(1.0, plain.abs().max().item<double>());
  return {"kv_cache", diff <= tol,
          "half the prompt at once, then one token per step through the KV cache vs the full forward: " + worstText(decoded, plain) +
              (diff <= tol ? " (within " : " (above ") + std::to_string(tol) + ")",
          {{"max_abs_diff", diff}, {"tolerance", tol}}};
}

FaithfulnessCheck dtypeDrift(const HookedTransformer& reference, const std::vector<int64_t>& ids, const at::Tensor& plain, at::ScalarType dtype) {
  HookedTransformer low(reference.config(), weightsTo(reference.weights(), reference.device(), dtype));
  const at::Tensor logits = logitsOf(low, ids);
  const at::Tensor p = at::softmax(plain, -1), q = at::softmax(logits, -1);
  const double agree = plain.argmax(-1).eq(logits.argmax(-1)).to(at::kDouble).mean().item<double>();
  const double tv = (0.5 * (p - q).abs().sum(-1)).mean().item<double>();
  const double diff = (logits - plain).abs().max().item<double>();
  char text[160];
  std::snprintf(text, sizeof text, "%s vs float32: top-1 agreement %.3f, mean total variation %.3g, %s", c10::toString(dtype),
                agree, tv, worstText(logits, plain).c_str());
  return {std::string("drift_") + c10::toString(dtype), true, text, {{"top1_agreement", agree}, {"total_variation", tv}, {"max_abs_diff", diff}}};
}
}  // namespace

std::vector<FaithfulnessCheck> runFaithfulnessChecks(HookedTransformer& model, const std::vector<int64_t>& ids) {
  if (ids.size() < 2) throw InputError("check: the prompt needs at least 2 tokens, got " + std::to_string(ids.size()));
  c10::InferenceMode guard;
  if (model.dtype() != at::kFloat) throw InputError("check: load the model in float32 (the drift checks compare other dtypes with it)");
  const at::Tensor plain = logitsOf(model, ids);
  std::vector<FaithfulnessCheck> out;
  out.push_back(bitIdentical("determinism", logitsOf(model, ids), plain, "two forwards of the same prompt"));
  out.push_back(observedHooks(model, ids, plain));
  out.push_back(perHeadResult(model, ids, plain));
  out.push_back(kvCache(model, ids, plain));
  for (at::ScalarType t : {at::kBFloat16, at::kHalf}) {
    try {
      out.push_back(dtypeDrift(model, ids, plain, t));
    } catch (const c10::Error&) {  // e.g. float16 matrix products on a CPU build without them
      out.push_back({std::string("drift_") + c10::toString(t), true,
                     std::string(c10::toString(t)) + " does not run on " + model.device().str() + " with this libtorch: not measured",
                     {{"measured", false}}});
    }
  }
  return out;
}

nlohmann::json toJson(const std::vector<FaithfulnessCheck>& checks) {
  nlohmann::json j = nlohmann::json::array();
  bool all = true;
  for (const auto& c : checks) {
    j.push_back({{"check", c.name}, {"passed", c.passed}, {"detail", c.detail}, {"values", c.values}});
    all = all && c.passed;
  }
  return {{"passed", all}, {"checks", j}};
}

}  // namespace headlab
