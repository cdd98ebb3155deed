// Attention sinks (Gu et al., "When Attention Sink Emerges in Language Models") and hidden sinks
// (Yu et al., ACT). PROBES.md §1.1 and §1.2.
//   alpha[l,h,k] = (1 / (T - k)) * sum_{i >= k} A[l,h][i,k]   mean attention key k receives
//   Sink_k^eps   = 100 * mean_{l,h} 1(alpha[l,h,k] > eps)    percent of heads where k is a sink
#include <ATen/ATen.h>

#include <algorithm>

#include "../common/probe_util.h"
#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/tokenizer.h"

namespace headlab::plugins {

namespace {
// [..., k] column sums of a pattern -> mean attention each key receives from the T - k queries that see it.
at::Tensor keyScores(const at::Tensor& columnSums) {
  const int64_t T = columnSums.size(-1);
  return columnSums / at::arange(T, 0, -1, at::kFloat);
}

class SinksProbe : public Probe {
 public:
  std::string name() const override { return "sinks"; }
  std::string description() const override {
    return "Attention sinks: alpha[l,h,k] = mean attention key k receives; Sink_k = percent of heads with alpha > eps. "
           "Range [0, 1] per head, [0, 100] per key; Sink_1 (the first token, key position 0 on the curve) near 100 means almost every head dumps attention on it.";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"eps", 0.3, "threshold on alpha (Gu et al.)"},
            {"max_tokens", 64, "T: prompts are cut to this many tokens"},
            {"short_prompts", "skip",
             "prompts shorter than T: skip (the reference measures sequences of exactly T tokens), refuse, or keep (measured at their own length)"},
            {"prompts", nlohmann::json::array(), "prompt set (empty = built-in)"}};
  }
  ProbeSummary summarize(const nlohmann::json& r) const override {
    ProbeSummary s;
    s.line = formatText("Sink_1 = %.1f%% of heads (alpha > %g on the first token), %lld prompts of %lld tokens", r["sink_1"].get<double>(),
                        r["params"]["eps"].get<double>(), r["prompts_used"].get<long long>(), r["sequence_length"].get<long long>());
    ProbeCurve c{"Sink_k", "key position k", "% of heads with alpha > eps", {}, r["sink_k"].get<std::vector<double>>()};
    for (size_t k = 0; k < c.y.size(); ++k) c.x.push_back(static_cast<double>(k));
    s.curves.push_back(std::move(c));
    return s;
  }

  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    const double eps = p["eps"];
    const int64_t maxT = std::min<int64_t>(p["max_tokens"].get<int64_t>(), ctx.model.config().n_ctx);  // T, within the context
    const std::string shortPrompts = p["short_prompts"];
    if (shortPrompts != "skip" && shortPrompts != "refuse" && shortPrompts != "keep")
      throw InputError("short_prompts must be skip, refuse or keep, got '" + shortPrompts + "'");
    const auto prompts = promptsOfLength(ctx, promptsFrom(p), maxT, shortPrompts);
    const auto& c = ctx.model.config();
    at::Tensor firstAlpha = at::zeros({c.n_layers, c.n_heads}, at::kDouble);
    nlohmann::json sink1PerPrompt = nlohmann::json::array();
    std::vector<double> sinkSum(static_cast<size_t>(maxT), 0.0);
    std::vector<int> sinkCount(static_cast<size_t>(maxT), 0);
    at::Tensor alphaSum;  // [L, H, maxT]
    at::Tensor alphaCount = at::zeros({maxT}, at::kDouble);
    for (size_t i = 0; i < prompts.size(); ++i) {
      reportProgress(ctx, static_cast<double>(i) / prompts.size(), "prompt " + std::to_string(i + 1) + "/" + std::to_string(prompts.size()));
      const auto& ids = prompts[i];
      // Column sums only: blockwise past a few thousand tokens, so no [T, T] pattern is held.
      at::Tensor alpha = keyScores(keyColumnSums(ctx.model, ids)).to(at::kDouble);  // [L, H, T]
      const int64_t T = alpha.size(2);
      firstAlpha += alpha.select(2, 0);
      at::Tensor pct = (alpha > eps).to(at::kDouble).mean(at::IntArrayRef{0, 1}) * 100.0;  // [T]
      for (int64_t k = 0; k < T; ++k) sinkSum[k] += pct[k].item<double>(), ++sinkCount[k];
      sink1PerPrompt.push_back(pct[0].item<double>());
      if (!alphaSum.defined()) alphaSum = at::zeros({c.n_layers, c.n_heads, maxT}, at::kDouble);
      alphaSum.slice(2, 0, T) += alpha;
      alphaCount.slice(0, 0, T) += 1;
    }
    reportProgress(ctx, 1.0, "done");
    firstAlpha /= static_cast<double>(prompts.size());
    nlohmann::json sinkK = nlohmann::json::array();
    for (int64_t k = 0; k < maxT; ++k)
      if (sinkCount[k] > 0) sinkK.push_back(sinkSum[k] / sinkCount[k]);
    at::Tensor meanAlpha = alphaSum / alphaCount.clamp_min(1);
    nlohmann::json triples = nlohmann::json::array();
    at::Tensor above = (meanAlpha > eps).nonzero();
    for (int64_t r = 0; r < above.size(0); ++r)
      triples.push_back({{"layer", above[r][0].item<int64_t>()}, {"head", above[r][1].item<int64_t>()}, {"key", above[r][2].item<int64_t>()},
                         {"alpha", meanAlpha[above[r][0]][above[r][1]][above[r][2]].item<double>()}});
    return {{"probe", name()},
            {"params", p},
            {"prompts_used", prompts.size()},
            {"prompts_skipped", m_skipped},
            {"sequence_length", maxT},
            {"grid", gridJson("alpha_first_token", firstAlpha)},
            {"sink_k", sinkK},
            {"sink_1", sinkK.empty() ? 0.0 : sinkK[0].get<double>()},
            {"sink_1_per_prompt", sink1PerPrompt},
            {"sinks_above_eps", triples}};
  }

 private:
  // The prompts' ids cut to T tokens; shorter ones skipped (counted), refused, or kept as they are.
  std::vector<std::vector<int64_t>> promptsOfLength(ProbeContext& ctx, const std::vector<std::string>& prompts, int64_t T,
                                                    const std::string& shortPrompts) {
    std::vector<std::vector<int64_t>> out;
    m_skipped = 0;
    size_t longest = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto ids = encodePrompt(*ctx.tokenizer, prompts[i], T);
      longest = std::max(longest, ids.size());
      if (static_cast<int64_t>(ids.size()) < T && shortPrompts == "refuse")
        throw InputError("prompt " + std::to_string(i + 1) + " has " + std::to_string(ids.size()) + " tokens, fewer than max_tokens = " +
                         std::to_string(T) + " (the reference measures sequences of exactly T tokens)");
      if (static_cast<int64_t>(ids.size()) < T && shortPrompts == "skip") {
        ++m_skipped;
        continue;
      }
      out.push_back(std::move(ids));
    }
    if (out.empty())
      throw InputError("every prompt is shorter than max_tokens = " + std::to_string(T) + " tokens (the longest has " + std::to_string(longest) +
                       "); lower max_tokens, give longer prompts, or set short_prompts = keep");
    return out;
  }
  int64_t m_skipped = 0;
};

class HiddenSinksProbe : public Probe {
 public:
  std::string name() const override { return "hidden-sinks"; }
  std::string description() const override {
    return "Hidden attention sinks (ACT, Yu et al.): keys j with s_j = sum_i A[i,j] / (T - j) > threshold, the first sink "
           "(normally BOS) dropped. The grid counts hidden sinks per head; calibrate them with the 'act' intervention (beta 0.4).";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"threshold", 0.1, "s_j above this marks a sink"},
            {"beta", 0.4, "ACT calibration factor (used by the act intervention)"},
            {"max_tokens", 64, "prompts are cut to this many tokens"},
            {"prompts", nlohmann::json::array(), "prompt set (empty = built-in)"}};
  }
  ProbeSummary summarize(const nlohmann::json& r) const override {
    return {formatText("%zu hidden sinks ((prompt, head, key) with s_j > %g after the first sink)", r["hidden_sinks"].size(),
                       r["params"]["threshold"].get<double>()),
            {}};
  }

  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    const double threshold = p["threshold"];
    auto prompts = promptsFrom(p);
    const auto& c = ctx.model.config();
    at::Tensor counts = at::zeros({c.n_layers, c.n_heads}, at::kDouble);
    nlohmann::json found = nlohmann::json::array();
    for (size_t i = 0; i < prompts.size(); ++i) {
      reportProgress(ctx, static_cast<double>(i) / prompts.size(), "prompt " + std::to_string(i + 1));
      auto ids = encodePrompt(*ctx.tokenizer, prompts[i], p["max_tokens"].get<int64_t>());
      const at::Tensor scores = keyScores(keyColumnSums(ctx.model, ids));  // [L, H, T]
      for (int64_t l = 0; l < c.n_layers; ++l) {
        at::Tensor s = scores[l];  // [head, k]
        for (int64_t h = 0; h < c.n_heads; ++h) {
          at::Tensor sinks = (s[h] > threshold).nonzero().flatten();
          // Drop the first detected sink: only later, hidden sinks count.
          for (int64_t j = 1; j < sinks.size(0); ++j) {
            int64_t key = sinks[j].item<int64_t>();
            counts[l][h] += 1.0 / prompts.size();
            found.push_back({{"prompt", i}, {"layer", l}, {"head", h}, {"key", key}, {"score", s[h][key].item<double>()},
                             {"token", ctx.tokenizer->tokenString(ids[key])}});
          }
        }
      }
    }
    reportProgress(ctx, 1.0, "done");
    return {{"probe", name()}, {"params", p}, {"grid", gridJson("hidden_sinks_per_prompt", counts)}, {"hidden_sinks", found}};
  }
};
}  // namespace

void registerProbes_sinks(ProbeRegistry& r) {
  r.add("sinks", [] { return std::make_unique<SinksProbe>(); });
  r.add("hidden-sinks", [] { return std::make_unique<HiddenSinksProbe>(); });
}

}  // namespace headlab::plugins
