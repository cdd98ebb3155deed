// Massive activations (Sun et al.), PROBES.md §1.3. On every layer's residual stream
// (hook_resid_post): an activation is massive when |a| > abs_threshold and |a| >= ratio * median(|h|)
// of that layer's hidden state. Dimensions are discovered, never hard-coded.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <map>

#include "../common/probe_util.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/tokenizer.h"

namespace headlab::plugins {

namespace {
class MassiveProbe : public Probe {
 public:
  std::string name() const override { return "massive"; }
  std::string description() const override {
    return "Massive activations: |a| > 100 and >= 1000x the median |h| of the layer's hidden state, per (layer, position, "
           "dimension); reports the dimensions and tokens that carry them and per-layer top-3 and median magnitudes.";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"abs_threshold", 100.0, "|a| must exceed this"},
            {"ratio", 1000.0, "|a| must be at least this times the median |h|"},
            {"max_tokens", 64, "prompts are cut to this many tokens"},
            {"prompts", nlohmann::json::array(), "prompt set (empty = built-in)"}};
  }
  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    const double absT = p["abs_threshold"], ratio = p["ratio"];
    auto prompts = promptsFrom(p);
    const auto& c = ctx.model.config();
    nlohmann::json layers = nlohmann::json::array(), hits = nlohmann::json::array();
    std::map<int64_t, int> dims;
    at::Tensor top1 = at::zeros({c.n_layers}, at::kDouble), medians = at::zeros({c.n_layers}, at::kDouble);
    std::vector<std::vector<double>> top3(static_cast<size_t>(c.n_layers), std::vector<double>(3, 0.0));
    for (size_t i = 0; i < prompts.size(); ++i) {
      reportProgress(ctx, static_cast<double>(i) / prompts.size(), "prompt " + std::to_string(i + 1));
      auto ids = encodePrompt(*ctx.tokenizer, prompts[i], p["max_tokens"].get<int64_t>());
      std::vector<at::Tensor> resid(static_cast<size_t>(c.n_layers));
      {
        c10::InferenceMode guard;
        std::vector<HookHandle> hs;
        for (int l = 0; l < c.n_layers; ++l)
          hs.push_back(ctx.model.hooks().add(ctx.model.hooks().idOf(l, LayerHook::ResidPost),
                                             [&resid, l](at::Tensor& t, const HookContext&) { resid[l] = t[0].abs().to(at::kCPU, at::kFloat); }));
        ctx.model.forward(at::tensor(ids, at::kLong).unsqueeze(0));
      }
      for (int64_t l = 0; l < c.n_layers; ++l) {
        const at::Tensor& a = resid[l];  // [pos, d_model] magnitudes
        double median = a.flatten().median().item<double>();
        medians[l] += median / prompts.size();
        auto t3 = std::get<0>(a.flatten().topk(std::min<int64_t>(3, a.numel())));
        for (int64_t k = 0; k < t3.size(0); ++k) top3[l][k] = std::max(top3[l][k], t3[k].item<double>());
        at::Tensor mask = (a > absT).logical_and(a >= ratio * median);
        at::Tensor where = mask.nonzero();
        for (int64_t r = 0; r < where.size(0); ++r) {
          int64_t pos = where[r][0].item<int64_t>(), dim = where[r][1].item<int64_t>();
          ++dims[dim];
          hits.push_back({{"prompt", i}, {"layer", l}, {"pos", pos}, {"dim", dim}, {"value", a[pos][dim].item<double>()},
                          {"token", ctx.tokenizer->tokenString(ids[pos])}});
        }
      }
    }
    reportProgress(ctx, 1.0, "done");
    for (int64_t l = 0; l < c.n_layers; ++l) layers.push_back({{"layer", l}, {"top3_abs", top3[l]}, {"median_abs", medians[l].item<double>()}});
    nlohmann::json discovered = nlohmann::json::array();
    for (auto& [d, n] : dims) discovered.push_back({{"dim", d}, {"count", n}});
    return {{"probe", name()}, {"params", p}, {"layers", layers}, {"massive_dims", discovered}, {"massive_activations", hits}};
  }
};
}  // namespace

void registerMassiveProbe(ProbeRegistry& r) { r.add("massive", [] { return std::make_unique<MassiveProbe>(); }); }

}  // namespace headlab::plugins
