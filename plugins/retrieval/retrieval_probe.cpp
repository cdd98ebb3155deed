// Retrieval heads (Wu et al., "Retrieval Head Mechanistically Explains Long-Context Factuality"),
// PROBES.md §2. A needle-in-a-haystack grid (context lengths x depths x needles); during greedy
// decoding, for every head, the top-1 key of the current query row: when it lies inside the
// needle and the token just generated equals the prompt token there, the head earns
// 1 / |needle| for this test. A test counts only when the answer's ROUGE-1 recall > 0.5; a head's
// retrieval score is the mean over counted tests; > 0.1 marks a retrieval head.
// Memory: the prompt is prefilled in chunks through the KV cache and only the top-1 key of the
// last row is kept per head and step, so nothing of size [layers, heads, T, T] ever exists.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cctype>
#include <numeric>
#include <map>
#include <random>
#include <sstream>

#include "../common/probe_util.h"
#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/interventions.h"
#include "headlab/core/tokenizer.h"

namespace headlab::plugins {

namespace {
std::vector<std::string> sentences(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    cur += c;
    if (c == '.' || c == '\n') {
      out.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

struct NiahTest {
  std::vector<int64_t> prompt;
  int64_t needleBegin = 0, needleEnd = 0;
  std::string answer;
  int64_t length = 0;
  double depth = 0;
};

struct Decoded {
  std::string text;
  at::Tensor score;  // [layer, head] for this test
};
}  // namespace

class RetrievalProbe : public Probe {
 public:
  std::string name() const override { return "retrieval"; }
  std::string description() const override {
    return "Retrieval heads: needle-in-a-haystack, top-1 key copy events inside the needle during greedy decoding, "
           "ROUGE-1 recall > 0.5 gate; score in [0, 1], > 0.1 = retrieval head. Optional masking of the top-K vs K random heads.";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"lengths", nlohmann::json::array({128, 256}), "context lengths in tokens"},
            {"depths", nlohmann::json::array({0, 25, 50, 75, 100}), "needle depth in percent"},
            {"needles", nlohmann::json::array({{{"needle", " The secret ingredient of the lighthouse soup is purple basil."},
                                                {"question", "What is the secret ingredient of the lighthouse soup?"},
                                                {"answer", "purple basil"}}}),
             "needle sentences with their question and answer"},
            {"haystack", "", "haystack text (empty = built-in)"},
            {"template", "{context}\nBased on the content of the book, Question: {question}\nAnswer:", "prompt template"},
            {"max_new_tokens", 50, "greedy decoding budget (stops at a newline)"},
            {"rouge_threshold", 0.5, "a test counts when ROUGE-1 recall exceeds this"},
            {"head_threshold", 0.1, "retrieval head when the score exceeds this"},
            {"mask_top_k", 0, "masking experiment: mask this many top heads and as many random heads (0 = skip, -1 = the smallest K that halves accuracy)"},
            {"mask_kind", "uniform", "uniform (the paper's masking) or zero"},
            {"random_draws", 3, "random head sets averaged in the masking experiment"},
            {"random_pool", "others", "random heads drawn from the heads outside the top K (others) or from all heads (all)"},
            {"seed", 0, "seed for the random heads"},
            {"prefill_chunk", 512, "prompt tokens per prefill step (bounds memory)"}};
  }

  ProbeSummary summarize(const nlohmann::json& r) const override {
    ProbeSummary s;
    s.line = formatText("NIAH accuracy %.2f over %lld tests, %lld retrieval heads (score > %g)", r["niah_accuracy"].get<double>(),
                        r["tests"].get<long long>(), r["retrieval_heads"].get<long long>(), r["params"]["head_threshold"].get<double>());
    std::map<double, std::pair<double, int>> byDepth;  // depth -> (recalled, tests)
    for (const auto& t : r["per_test"]) {
      auto& d = byDepth[t["depth"].get<double>()];
      d.first += t["counted"].get<bool>() ? 1.0 : 0.0;
      ++d.second;
    }
    ProbeCurve c{"NIAH accuracy", "needle depth (%)", "accuracy (ROUGE-1 recall > 0.5)", {}, {}};
    for (const auto& [depth, v] : byDepth) c.x.push_back(depth), c.y.push_back(v.first / v.second);
    s.curves.push_back(std::move(c));
    return s;
  }

  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    if (!ctx.tokenizer) throw InputError("the retrieval probe needs a tokenizer");
    const auto& c = ctx.model.config();
    auto tests = buildTests(ctx, p);
    if (tests.empty()) throw InputError("the retrieval probe built no tests (check lengths and needles)");
    at::Tensor sum = at::zeros({c.n_layers, c.n_heads}, at::kDouble);
    int counted = 0, correct = 0;
    nlohmann::json perTest = nlohmann::json::array();
    for (size_t i = 0; i < tests.size(); ++i) {
      reportProgress(ctx, 0.7 * i / tests.size(), "NIAH test " + std::to_string(i + 1) + "/" + std::to_string(tests.size()));
      Decoded d = decode(ctx, p, tests[i], {});
      double recall = rouge1Recall(d.text, tests[i].answer);
      const bool ok = recall > p["rouge_threshold"].get<double>();
      if (ok) sum += d.score, ++counted, ++correct;
      perTest.push_back({{"length", tests[i].length}, {"depth", tests[i].depth}, {"answer", d.text}, {"rouge1_recall", recall}, {"counted", ok}});
    }
    at::Tensor score = counted ? sum / counted : sum;
    const double threshold = p["head_threshold"];
    nlohmann::json ranking = nlohmann::json::array();
    at::Tensor order = std::get<1>(score.flatten().sort(0, true));
    for (int64_t i = 0; i < order.size(0); ++i) {
      int64_t k = order[i].item<int64_t>();
      double v = score.flatten()[k].item<double>();
      if (v <= 0 && i >= 10) break;
      ranking.push_back({{"layer", k / c.n_heads}, {"head", k % c.n_heads}, {"score", v}, {"retrieval_head", v > threshold}});
    }
    nlohmann::json out = {{"probe", name()},
                          {"params", p},
                          {"tests", tests.size()},
                          {"counted_tests", counted},
                          {"niah_accuracy", static_cast<double>(correct) / tests.size()},
                          {"grid", gridJson("retrieval_score", score)},
                          {"ranking", ranking},
                          {"retrieval_heads", (score > threshold).sum().item<int64_t>()},
                          {"per_test", perTest}};
    // mask_top_k = -1: the smallest K whose masking drops accuracy by half (at most the number of
    // retrieval heads): redundant retrieval heads share the work, so one may not be enough.
    const int64_t K = p["mask_top_k"];
    const int64_t adaptiveMax = std::max<int64_t>(1, out["retrieval_heads"].get<int64_t>());
    if (K != 0) out["masking"] = maskingExperiment(ctx, p, tests, order, K > 0 ? K : -adaptiveMax);
    reportProgress(ctx, 1.0, "done");
    return out;
  }

 private:
  std::vector<NiahTest> buildTests(ProbeContext& ctx, const nlohmann::json& p) {
    const Tokenizer& tok = *ctx.tokenizer;
    std::string hay = p["haystack"].get<std::string>();
    if (hay.empty())
      for (const auto& s : builtinPrompts()) hay += s + " ";
    auto hs = sentences(hay);
    std::vector<NiahTest> tests;
    for (const auto& needle : p["needles"]) {
      const std::string nd = needle.at("needle"), q = needle.at("question"), ans = needle.at("answer");
      for (const auto& len : p["lengths"]) {
        const int64_t L = len.get<int64_t>();
        if (L >= ctx.model.config().n_ctx)
          throw InputError("context length " + std::to_string(L) + " does not fit the model's context of " + std::to_string(ctx.model.config().n_ctx));
        for (const auto& dep : p["depths"]) {
          const double depth = dep.get<double>() / 100.0;
          // Sentences of haystack (cycled) until the prompt would reach L tokens.
          std::vector<std::string> ctxSentences;
          auto promptOf = [&](const std::vector<std::string>& sents) {
            std::string context;
            for (const auto& s : sents) context += s;
            std::string t = p["template"];
            t.replace(t.find("{context}"), 9, context);
            t.replace(t.find("{question}"), 10, q);
            return t;
          };
          size_t k = 0;
          while (true) {
            ctxSentences.push_back(hs[k++ % hs.size()]);
            if (static_cast<int64_t>(tok.encode(promptOf(ctxSentences) + nd, true).size()) > L) {
              ctxSentences.pop_back();
              break;
            }
            if (k > 100000) break;
          }
          size_t at = static_cast<size_t>(std::lround(depth * ctxSentences.size()));
          std::vector<std::string> before(ctxSentences.begin(), ctxSentences.begin() + static_cast<long>(at));
          std::string prefix;
          for (const auto& s : before) prefix += s;
          NiahTest t;
          t.needleBegin = static_cast<int64_t>(tok.encode(prefix, true).size());
          t.needleEnd = static_cast<int64_t>(tok.encode(prefix + nd, true).size());
          std::vector<std::string> all = before;
          all.push_back(nd);
          all.insert(all.end(), ctxSentences.begin() + static_cast<long>(at), ctxSentences.end());
          t.prompt = tok.encode(promptOf(all), true);
          t.answer = ans;
          t.length = static_cast<int64_t>(t.prompt.size());
          t.depth = dep.get<double>();
          if (t.needleEnd > t.needleBegin) tests.push_back(std::move(t));
        }
      }
    }
    return tests;
  }

  // Greedy decoding that records, per step, each head's top-1 key of the current row.
  Decoded decode(ProbeContext& ctx, const nlohmann::json& p, const NiahTest& t, const std::vector<Intervention>& masks) {
    c10::InferenceMode guard;
    HookedTransformer& m = ctx.model;
    const Tokenizer& tok = *ctx.tokenizer;
    const int64_t L = m.config().n_layers, H = m.config().n_heads;
    at::Tensor top1 = at::zeros({L, H}, at::kLong);
    std::vector<HookHandle> hs;
    for (int l = 0; l < L; ++l)
      hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Pattern), [&top1, l](at::Tensor& pat, const HookContext&) {
        top1[l] = pat[0].select(1, pat.size(2) - 1).argmax(-1).cpu();  // [head]: last query row only
      }));
    KvCache cache;
    const int64_t chunk = std::max<int64_t>(1, p["prefill_chunk"].get<int64_t>());
    at::Tensor logits;
    for (int64_t b = 0; b < static_cast<int64_t>(t.prompt.size()); b += chunk) {
      std::vector<int64_t> part(t.prompt.begin() + b, t.prompt.begin() + std::min<int64_t>(b + chunk, t.prompt.size()));
      logits = m.forward(at::tensor(part, at::kLong).unsqueeze(0), &cache);
    }
    // The paper masks during decoding only: install the masks after the prefill.
    std::vector<HookHandle> maskHandles = install(m, masks);
    Decoded d;
    d.score = at::zeros({L, H}, at::kDouble);
    const double unit = 1.0 / static_cast<double>(t.needleEnd - t.needleBegin);  // 1 / |needle| per copy
    std::vector<int64_t> generated;
    const int64_t budget = std::min<int64_t>(p["max_new_tokens"].get<int64_t>(), m.config().n_ctx - static_cast<int64_t>(t.prompt.size()));
    for (int64_t s = 0; s < budget; ++s) {
      int64_t next = logits[0][-1].argmax().item<int64_t>();
      d.score += copyEvents(top1, next, t.prompt, t.needleBegin, t.needleEnd) * unit;
      if (next == tok.eos()) break;
      std::string piece = tok.decodeStep(generated.empty() ? -1 : generated.back(), next);
      if (piece.find('\n') != std::string::npos) break;
      generated.push_back(next);
      if (cache.length >= m.config().n_ctx) break;
      logits = m.forward(at::tensor(std::vector<int64_t>{next}, at::kLong).unsqueeze(0), &cache);
    }
    d.text = tok.decode(generated);
    return d;
  }

  double accuracy(ProbeContext& ctx, const nlohmann::json& p, const std::vector<NiahTest>& tests, const std::vector<Intervention>& masks) {
    int ok = 0;
    for (const auto& t : tests) ok += rouge1Recall(decode(ctx, p, t, masks).text, t.answer) > p["rouge_threshold"].get<double>();
    return static_cast<double>(ok) / tests.size();
  }

  nlohmann::json maskingExperiment(ProbeContext& ctx, const nlohmann::json& p, const std::vector<NiahTest>& tests,
                                   const at::Tensor& order, int64_t K) {
    // K < 0: adaptive, the smallest k in [1, -K] whose masking drops accuracy by at least 0.5.
    const int64_t H = ctx.model.config().n_heads, total = order.size(0);
    const bool adaptive = K < 0;
    K = std::min(std::abs(K), total);
    const InterventionKind kind = interventionKindFromString(p["mask_kind"].get<std::string>());
    auto masksFor = [&](const std::vector<int64_t>& flat) {
      std::vector<Intervention> ivs;
      for (int64_t k : flat) ivs.push_back(Intervention{kind, static_cast<int>(k / H), {static_cast<int>(k % H)}});
      return ivs;
    };
    reportProgress(ctx, 0.75, "masking the top heads");
    const double base = accuracy(ctx, p, tests, {});
    std::vector<int64_t> top;
    double topAcc = base;
    nlohmann::json curve = nlohmann::json::array();
    for (int64_t i = 0; i < K; ++i) {
      top.push_back(order[i].item<int64_t>());
      if (!adaptive && i + 1 < K) continue;
      topAcc = accuracy(ctx, p, tests, masksFor(top));
      curve.push_back({{"k", i + 1}, {"accuracy", topAcc}});
      if (adaptive && base - topAcc >= 0.5) break;
    }
    K = static_cast<int64_t>(top.size());
    const std::string pool = p["random_pool"];
    if (pool != "others" && pool != "all") throw InputError("random_pool must be 'others' or 'all', got '" + pool + "'");
    const bool othersOnly = pool == "others";
    std::mt19937_64 rng(p["seed"].get<uint64_t>());
    nlohmann::json draws = nlohmann::json::array();
    double randomSum = 0;
    const int n = std::max(1, p["random_draws"].get<int>());
    for (int d = 0; d < n; ++d) {
      reportProgress(ctx, 0.8 + 0.2 * d / n, "masking random heads, draw " + std::to_string(d + 1));
      std::vector<int64_t> all;
      for (int64_t h = 0; h < total; ++h)
        if (!othersOnly || std::find(top.begin(), top.end(), h) == top.end()) all.push_back(h);
      std::shuffle(all.begin(), all.end(), rng);
      all.resize(static_cast<size_t>(std::min<int64_t>(K, static_cast<int64_t>(all.size()))));
      double acc = accuracy(ctx, p, tests, masksFor(all));
      randomSum += acc;
      draws.push_back({{"heads", all}, {"accuracy", acc}});
    }
    return {{"kind", toString(kind)},           {"k", K},
            {"applied", "decoding only"},      {"random_pool", pool},      {"accuracy_unmasked", base},
            {"accuracy_top_k_masked", topAcc}, {"accuracy_random_k_masked", randomSum / n},
            {"top_heads", top},                {"random_draws", draws},
            {"top_k_curve", curve},
            {"k_rule", adaptive ? "smallest K whose masking drops accuracy by at least 0.5, at most the number of retrieval heads"
                                : "given"}};
  }
};

void registerProbes_retrieval(ProbeRegistry& r) { r.add("retrieval", [] { return std::make_unique<RetrievalProbe>(); }); }

}  // namespace headlab::plugins
