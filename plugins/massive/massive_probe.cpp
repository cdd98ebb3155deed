// Massive activations (Sun et al.), PROBES.md §1.3. On every layer's residual stream
// (hook_resid_post): an activation is massive when |a| > abs_threshold and |a| >= ratio * median(|h|)
// of that layer's hidden state. Dimensions are discovered, never hard-coded.
// The intervention (Sun et al. §3): at the first layer where they appear, set the massive
// activations to 0 or to their mean over the prompt set and compare the prompts' next-token loss.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <map>

#include "../common/probe_util.h"
#include "headlab/core/errors.h"
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
            {"max_tokens", 64, "prompts are cut to this many tokens (the sequence length)"},
            {"bos", false, "prepend BOS (the reference measures BOS-free sequences; true: the start token is BOS)"},
            {"intervene", true, "also set the massive activations to 0 and to their mean and report the loss"},
            {"aggregate", "mean", "per-layer top-3 magnitudes over the prompts: mean (as locuslab/massive-activations) or max"},
            {"prompts", nlohmann::json::array(), "prompt set (empty = built-in)"}};
  }
  ProbeSummary summarize(const nlohmann::json& r) const override {
    double top = 0;
    long long at = 0;
    for (const auto& l : r["layers"])
      if (!l["top3_abs"].empty() && l["top3_abs"][0].get<double>() > top) top = l["top3_abs"][0], at = l["layer"];
    return {formatText("%zu massive activations; largest |a| = %.1f (layer %lld)", r["massive_activations"].size(), top, at), {}};
  }

  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    const double absT = p["abs_threshold"], ratio = p["ratio"];
    auto prompts = promptsFrom(p);
    const std::string aggregate = p["aggregate"];
    if (aggregate != "mean" && aggregate != "max") throw InputError("aggregate must be mean or max, got '" + aggregate + "'");
    const auto& c = ctx.model.config();
    nlohmann::json layers = nlohmann::json::array(), hits = nlohmann::json::array();
    std::map<int64_t, int> dims;
    at::Tensor top1 = at::zeros({c.n_layers}, at::kDouble), medians = at::zeros({c.n_layers}, at::kDouble);
    std::vector<std::vector<double>> top3(static_cast<size_t>(c.n_layers), std::vector<double>(3, 0.0));
    std::vector<std::vector<int64_t>> promptIds;
    struct Hit {
      size_t prompt;
      int64_t layer, pos, dim;
      double value;  // signed
    };
    std::vector<Hit> found;
    for (size_t i = 0; i < prompts.size(); ++i) {
      reportProgress(ctx, static_cast<double>(i) / prompts.size(), "prompt " + std::to_string(i + 1));
      auto ids = encodePrompt(*ctx.tokenizer, prompts[i], p["max_tokens"].get<int64_t>(), p["bos"].get<bool>());
      std::vector<at::Tensor> resid(static_cast<size_t>(c.n_layers));
      {
        c10::InferenceMode guard;
        std::vector<HookHandle> hs;
        for (int l = 0; l < c.n_layers; ++l)
          hs.push_back(ctx.model.hooks().add(ctx.model.hooks().idOf(l, LayerHook::ResidPost),
                                             [&resid, l](at::Tensor& t, const HookContext&) { resid[l] = t[0].to(at::kCPU, at::kFloat); }));
        ctx.model.forward(at::tensor(ids, at::kLong).unsqueeze(0));
      }
      for (int64_t l = 0; l < c.n_layers; ++l) {
        const at::Tensor a = resid[l].abs();  // [pos, d_model] magnitudes
        double median = a.flatten().median().item<double>();
        medians[l] += median / prompts.size();
        auto t3 = std::get<0>(a.flatten().topk(std::min<int64_t>(3, a.numel())));
        for (int64_t k = 0; k < t3.size(0); ++k)
          top3[l][k] = aggregate == "max" ? std::max(top3[l][k], t3[k].item<double>()) : top3[l][k] + t3[k].item<double>() / prompts.size();
        at::Tensor mask = (a > absT).logical_and(a >= ratio * median);
        at::Tensor where = mask.nonzero();
        for (int64_t r = 0; r < where.size(0); ++r) {
          int64_t pos = where[r][0].item<int64_t>(), dim = where[r][1].item<int64_t>();
          ++dims[dim];
          found.push_back({i, l, pos, dim, resid[l][pos][dim].item<double>()});
          hits.push_back({{"prompt", i}, {"layer", l}, {"pos", pos}, {"dim", dim}, {"value", a[pos][dim].item<double>()},
                          {"token", ctx.tokenizer->tokenString(ids[pos])}});
        }
      }
    }
    nlohmann::json result = {{"probe", name()}, {"params", p}};
    if (p["intervene"].get<bool>() && !found.empty()) result["intervention"] = intervene(ctx, prompts, p, found);
    reportProgress(ctx, 1.0, "done");
    for (int64_t l = 0; l < c.n_layers; ++l) layers.push_back({{"layer", l}, {"top3_abs", top3[l]}, {"median_abs", medians[l].item<double>()}});
    nlohmann::json discovered = nlohmann::json::array();
    for (auto& [d, n] : dims) discovered.push_back({{"dim", d}, {"count", n}});
    result["layers"] = layers, result["massive_dims"] = discovered, result["massive_activations"] = hits;
    return result;
  }

 private:
  template <class Hits>
  nlohmann::json intervene(ProbeContext& ctx, const std::vector<std::string>& prompts, const nlohmann::json& p, const Hits& found) {
    int64_t first = found.front().layer;
    for (const auto& h : found) first = std::min(first, h.layer);
    // As the reference sets them: to the mean over the prompt set, taken separately at the starting
    // token and at the later positions (where the delimiter's massive activation sits).
    std::map<std::pair<bool, int64_t>, std::pair<double, int>> sums;  // (first token?, dim) -> (sum, count) at `first`
    for (const auto& h : found)
      if (h.layer == first) sums[{h.pos == 0, h.dim}].first += h.value, ++sums[{h.pos == 0, h.dim}].second;
    nlohmann::json means = {{"first_token", nlohmann::json::object()}, {"later_positions", nlohmann::json::object()}};
    for (auto& [key, sc] : sums) means[key.first ? "first_token" : "later_positions"][std::to_string(key.second)] = sc.first / sc.second;
    auto meanAt = [&sums](int64_t pos, int64_t dim) {
      const auto& sc = sums.at({pos == 0, dim});
      return sc.first / sc.second;
    };
    double nll[3] = {0, 0, 0};  // original, zero, mean
    for (size_t i = 0; i < prompts.size(); ++i) {
      reportProgress(ctx, 0.9, "intervening, prompt " + std::to_string(i + 1));
      auto ids = encodePrompt(*ctx.tokenizer, prompts[i], p["max_tokens"].get<int64_t>(), p["bos"].get<bool>());
      std::vector<std::pair<int64_t, int64_t>> cells;  // (pos, dim) massive in this prompt at `first`
      for (const auto& h : found)
        if (h.prompt == i && h.layer == first) cells.emplace_back(h.pos, h.dim);
      for (int mode = 0; mode < 3; ++mode) {
        c10::InferenceMode guard;
        std::vector<HookHandle> hs;
        if (mode > 0)
          hs.push_back(ctx.model.hooks().add(ctx.model.hooks().idOf(static_cast<int>(first), LayerHook::ResidPost),
                                             [&, mode](at::Tensor& t, const HookContext&) {
                                               for (auto [pos, dim] : cells)
                                                 t[0][pos][dim] = mode == 1 ? 0.0 : meanAt(pos, dim);
                                             }));
        at::Tensor ids1 = at::tensor(ids, at::kLong).unsqueeze(0);
        at::Tensor logp = at::log_softmax(ctx.model.forward(ids1)[0].to(at::kCPU, at::kFloat), -1);  // [pos, vocab]
        const int64_t T = logp.size(0);
        if (T < 2) continue;
        at::Tensor next = ids1[0].slice(0, 1).to(at::kCPU);
        nll[mode] += -logp.slice(0, 0, T - 1).gather(1, next.unsqueeze(1)).mean().item<double>() / prompts.size();
      }
    }
    return {{"layer", first},
            {"mean_values", means},
            {"applied_at", "hook_resid_post of the first layer with massive activations, at the positions and dimensions found"},
            {"nll_original", nll[0]},
            {"nll_zeroed", nll[1]},
            {"nll_set_to_mean", nll[2]}};
  }
};
}  // namespace

void registerProbes_massive(ProbeRegistry& r) { r.add("massive", [] { return std::make_unique<MassiveProbe>(); }); }

}  // namespace headlab::plugins
