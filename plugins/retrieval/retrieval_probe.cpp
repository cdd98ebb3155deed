// Retrieval heads (Wu et al., "Retrieval Head Mechanistically Explains Long-Context Factuality"),
// PROBES.md §2, as nightdessert/Retrieval_Head's retrieval_head_detection.py computes them. A
// needle-in-a-haystack grid (context lengths x depths x needles); the prompt less its last token is
// prefilled, then greedy decoding starts from that token. At every step, for every head, the top-1 key
// of the current query row: when it lies inside the answer span (the reference's real_needle, found in
// the prompt ids) and the token just generated equals the prompt token there, the head earns
// 1 / |answer| for this test. A test counts only when rouge_score's ROUGE-1 recall (stemmed) of the
// answer in the response exceeds 0.5; a head's retrieval score is the mean over counted tests (the
// reference's head_score lists); > 0.1 marks a retrieval head.
// Memory: the prompt is prefilled in chunks through the KV cache and only the top-1 key of the
// last row is kept per head and step, so nothing of size [layers, heads, T, T] ever exists.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cctype>
#include <numeric>
#include <map>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "../common/probe_util.h"
#include "retrieval_scoring.h"
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
  int64_t needleBegin = 0, needleEnd = 0;  // the answer span in the prompt ids (the copy targets)
  std::string answer;
  int64_t length = 0;
  double depth = 0;
};

struct Decoded {
  std::string text;
  at::Tensor score;  // [layer, head] for this test, float64
};

// The reference's head_score JSON: {"layer-head": [score of each counted test]}.
nlohmann::json headScoreJson(const std::vector<std::vector<double>>& lists, int64_t H) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t k = 0; k < lists.size(); ++k) j[std::to_string(k / H) + "-" + std::to_string(k % H)] = lists[k];
  return j;
}

// Appends a head_score file's lists to this run's, as the reference does when the file exists.
void mergeHeadScoreFile(const std::string& path, int64_t L, int64_t H, std::vector<std::vector<double>>& lists) {
  if (!std::filesystem::exists(path)) return;
  std::ifstream in(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": not a head_score JSON file (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw InputError(path + ": expected an object {\"layer-head\": [scores]}");
  for (const auto& [key, values] : j.items()) {
    int64_t l = -1, h = -1;
    char dash = 0, extra = 0;
    std::istringstream ks(key);
    if (!(ks >> l >> dash >> h) || dash != '-' || (ks >> extra) || l < 0 || l >= L || h < 0 || h >= H)
      throw InputError(path + ": key '" + key + "' is not a head of this model (layer-head, " + std::to_string(L) + " x " +
                       std::to_string(H) + ")");
    if (!values.is_array()) throw InputError(path + ": '" + key + "' must hold a list of scores");
    for (const auto& v : values) {
      if (!v.is_number()) throw InputError(path + ": '" + key + "' holds a non-number");
      lists[static_cast<size_t>(l * H + h)].push_back(v.get<double>());
    }
  }
}

void writeJsonAtomically(const std::string& path, const nlohmann::json& j) {
  const std::string temp = path + ".partial";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << j.dump();
    if (!out.flush()) {
      std::filesystem::remove(temp);
      throw IoError(path + ": cannot write the head_score file");
    }
  }
  std::filesystem::rename(temp, path);
}

}  // namespace

namespace {
std::vector<int64_t> occurrences(const std::vector<int64_t>& hay, const std::vector<int64_t>& needle) {
  std::vector<int64_t> at;
  if (needle.empty() || needle.size() > hay.size()) return at;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (std::equal(needle.begin(), needle.end(), hay.begin() + static_cast<long>(i))) at.push_back(static_cast<int64_t>(i));
  return at;
}

}  // namespace

std::pair<int64_t, int64_t> answerSpan(const Tokenizer& tok, const std::vector<int64_t>& prompt, const std::string& answer, int64_t needleBegin,
                                       int64_t needleEnd) {
  const std::vector<int64_t> plain = tok.encode(answer, false);
  for (const auto& ids : {plain, tok.encode(" " + answer, false)}) {
    const auto at = occurrences(prompt, ids);
    if (at.empty()) continue;
    int64_t best = at.front();
    for (int64_t i : at)
      if (i >= needleBegin && i < needleEnd) best = i;
    return {best, best + static_cast<int64_t>(ids.size())};
  }
  const std::set<int64_t> want(plain.begin(), plain.end());
  for (size_t i = 0; !want.empty() && i < prompt.size(); ++i) {
    const std::set<int64_t> window(prompt.begin() + static_cast<long>(i), prompt.begin() + static_cast<long>(std::min(prompt.size(), i + plain.size())));
    size_t overlap = 0;
    for (int64_t id : window) overlap += want.count(id);
    if (static_cast<double>(overlap) / want.size() > 0.9) return {static_cast<int64_t>(i), static_cast<int64_t>(i + plain.size())};
  }
  throw InputError("retrieval: the answer '" + answer + "' is not in the prompt's tokens (the needle sentence must contain it)");
}
NiahDecoding decodeNiah(HookedTransformer& m, const Tokenizer& tok, const std::vector<int64_t>& prompt, int64_t spanBegin, int64_t spanEnd,
                        const std::vector<Intervention>& masks, int64_t maxNewTokens, int64_t prefillChunk) {
  c10::InferenceMode guard;
  const int64_t L = m.config().n_layers, H = m.config().n_heads, T = static_cast<int64_t>(prompt.size());
  if (T == 0) throw InputError("retrieval: empty prompt");
  if (spanEnd <= spanBegin) throw InputError("retrieval: empty answer span");
  KvCache cache;
  const int64_t chunk = std::max<int64_t>(1, prefillChunk);
  for (int64_t b = 0; b < T - 1; b += chunk) {
    std::vector<int64_t> part(prompt.begin() + b, prompt.begin() + std::min<int64_t>(b + chunk, T - 1));
    m.forward(at::tensor(part, at::kLong).unsqueeze(0), &cache);
  }
  at::Tensor top1 = at::zeros({L, H}, at::kLong);
  std::vector<HookHandle> hs;
  for (int l = 0; l < L; ++l)
    hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Pattern), [&top1, l](at::Tensor& pat, const HookContext&) {
      top1[l] = pat[0].select(1, pat.size(2) - 1).argmax(-1).cpu();  // [head]: the step's query row
    }));
  std::vector<HookHandle> maskHandles = install(m, masks);
  NiahDecoding d;
  d.score = at::zeros({L, H}, at::kDouble);
  const double unit = 1.0 / static_cast<double>(spanEnd - spanBegin);  // 1 / |answer| per copy
  const int64_t budget = std::min<int64_t>(maxNewTokens, m.config().n_ctx - (T - 1));
  int64_t input = prompt.back();
  for (int64_t s = 0; s < budget; ++s) {
    at::Tensor logits = m.forward(at::tensor(std::vector<int64_t>{input}, at::kLong).unsqueeze(0), &cache);
    const int64_t next = logits[0][-1].argmax().item<int64_t>();
    d.score += copyEvents(top1, next, prompt, spanBegin, spanEnd) * unit;
    d.tokens.push_back(next);
    if (tok.decodeStep(d.tokens.size() > 1 ? d.tokens[d.tokens.size() - 2] : -1, next).find('\n') != std::string::npos) break;
    input = next;
  }
  std::vector<int64_t> shown;
  for (int64_t id : d.tokens)
    if (id != tok.eos() && id != tok.bos()) shown.push_back(id);
  d.text = tok.decode(shown);
  const size_t first = d.text.find_first_not_of(" \t\r\n"), last = d.text.find_last_not_of(" \t\r\n");
  d.text = first == std::string::npos ? "" : d.text.substr(first, last - first + 1);
  return d;
}

class RetrievalProbe : public Probe {
 public:
  std::string name() const override { return "retrieval"; }
  std::string description() const override {
    return "Retrieval heads: needle-in-a-haystack, top-1 key copy events inside the answer span during greedy decoding, "
           "ROUGE-1 recall > 0.5 gate; score in [0, 1], > 0.1 = retrieval head. Optional masking of the top-K vs K random heads.";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"lengths", nlohmann::json::array({128, 256}), "context lengths in tokens"},
            {"depths", nlohmann::json::array({0, 25, 50, 75, 100}), "needle depth in percent"},
            {"needles", nlohmann::json::array({{{"needle", " The secret ingredient of the lighthouse soup is purple basil."},
                                                {"question", "What is the secret ingredient of the lighthouse soup?"},
                                                {"answer", "purple basil"}}}),
             "needle sentences with their question and answer (the reference's real_needle: the copy span and the ROUGE target)"},
            {"haystack", "", "haystack text (empty = built-in)"},
            {"template", "{context}Based on the content of the book, Question: {question}\nAnswer:",
             "prompt template (the reference's wording: context, then the question)"},
            {"max_new_tokens", 50, "greedy decoding budget (stops at a newline)"},
            {"rouge_threshold", 0.5, "a test counts when ROUGE-1 recall exceeds this"},
            {"head_threshold", 0.1, "retrieval head when the score exceeds this"},
            {"head_score_file", "", "the reference's head_score JSON ({\"layer-head\": [per-test scores]}): its lists are "
                                    "added to this run's, the scores are their means, and the merged file is written back"},
            {"mask_top_k", 0, "masking experiment: mask the K top heads, and K random heads (0 = skip)"},
            {"adaptive", false, "masking: the smallest K <= mask_top_k (or <= the number of retrieval heads when 0) that halves accuracy"},
            {"mask_kind", "uniform", "uniform (the paper's masking) or zero"},
            {"random_pool", "outside_top", "random heads: outside_top (outside the top random_exclude_top heads, as the reference) or "
                                           "non_retrieval (among the heads scoring <= head_threshold)"},
            {"random_exclude_top", 100, "outside_top: random heads are drawn outside the top this many heads (the reference's 100; at least the top K)"},
            {"random_per_test", true, "draw new random heads for every test, as the reference does (false: one draw per repetition)"},
            {"random_draws", 1, "repetitions of the random masking, averaged"},
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
    const int64_t maskTopK = p["mask_top_k"];
    if (maskTopK < 0)
      throw InputError("retrieval: mask_top_k must be >= 0, got " + std::to_string(maskTopK) +
                       " (K random heads are always masked alongside the top K; for the smallest K that halves accuracy set adaptive)");
    const auto& c = ctx.model.config();
    const int64_t L = c.n_layers, H = c.n_heads;
    auto tests = buildTests(ctx, p);
    if (tests.empty()) throw InputError("the retrieval probe built no tests (check lengths and needles)");
    // Per head, the score of every counted test: the reference's head_counter.
    std::vector<std::vector<double>> lists(static_cast<size_t>(L * H));
    int counted = 0;
    nlohmann::json perTest = nlohmann::json::array();
    for (size_t i = 0; i < tests.size(); ++i) {
      reportProgress(ctx, 0.7 * i / tests.size(), "NIAH test " + std::to_string(i + 1) + "/" + std::to_string(tests.size()));
      Decoded d = decode(ctx, p, tests[i], {});
      const double recall = rouge1Recall(d.text, tests[i].answer);
      const bool ok = recall > p["rouge_threshold"].get<double>();
      if (ok) {
        ++counted;
        const double* v = d.score.data_ptr<double>();
        for (size_t k = 0; k < lists.size(); ++k) lists[k].push_back(v[k]);
      }
      perTest.push_back({{"length", tests[i].length}, {"depth", tests[i].depth}, {"answer", d.text}, {"rouge1_recall", recall},
                         {"counted", ok}, {"answer_span", {tests[i].needleBegin, tests[i].needleEnd}}});
    }
    const std::string scoreFile = p["head_score_file"];
    if (!scoreFile.empty()) mergeHeadScoreFile(scoreFile, L, H, lists);
    at::Tensor score = at::zeros({L, H}, at::kDouble);
    for (size_t k = 0; k < lists.size(); ++k)
      if (!lists[k].empty()) score.view({-1})[static_cast<int64_t>(k)] = std::accumulate(lists[k].begin(), lists[k].end(), 0.0) / lists[k].size();
    const nlohmann::json headScore = headScoreJson(lists, H);
    if (!scoreFile.empty()) writeJsonAtomically(scoreFile, headScore);
    const double threshold = p["head_threshold"];
    nlohmann::json ranking = nlohmann::json::array();
    at::Tensor order = std::get<1>(score.flatten().sort(0, true));
    for (int64_t i = 0; i < order.size(0); ++i) {
      int64_t k = order[i].item<int64_t>();
      double v = score.flatten()[k].item<double>();
      if (v <= 0 && i >= 10) break;
      ranking.push_back({{"layer", k / H}, {"head", k % H}, {"score", v}, {"retrieval_head", v > threshold}});
    }
    nlohmann::json out = {{"probe", name()},
                          {"params", p},
                          {"tests", tests.size()},
                          {"counted_tests", counted},
                          {"niah_accuracy", static_cast<double>(counted) / tests.size()},
                          {"grid", gridJson("retrieval_score", score)},
                          {"ranking", ranking},
                          {"retrieval_heads", (score > threshold).sum().item<int64_t>()},
                          {"head_score", headScore},
                          {"per_test", perTest}};
    // adaptive: the smallest K whose masking drops accuracy by half, at most mask_top_k or the number of
    // retrieval heads: redundant retrieval heads share the work, so one may not be enough.
    const bool adaptive = p["adaptive"];
    if (maskTopK > 0 || adaptive) {
      const int64_t K = maskTopK > 0 ? maskTopK : std::max<int64_t>(1, out["retrieval_heads"].get<int64_t>());
      out["masking"] = maskingExperiment(ctx, p, tests, order, K, adaptive, out["retrieval_heads"].get<int64_t>());
    }
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
    const std::string tmpl = p["template"];
    for (const char* field : {"{context}", "{question}"})
      if (tmpl.find(field) == std::string::npos) throw InputError(std::string("retrieval: the template has no ") + field);
    const std::string lead = tmpl.substr(0, tmpl.find("{context}"));  // the template's text before the context
    std::vector<NiahTest> tests;
    for (const auto& needle : p["needles"]) {
      const std::string nd = needle.at("needle"), q = needle.at("question"), ans = needle.at("answer");
      if (ans.empty()) throw InputError("retrieval: a needle has an empty answer (the answer is the copy span and the ROUGE target)");
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
            std::string t = tmpl;
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
          std::vector<std::string> all = before;
          all.push_back(nd);
          all.insert(all.end(), ctxSentences.begin() + static_cast<long>(at), ctxSentences.end());
          t.prompt = tok.encode(promptOf(all), true);
          if (static_cast<int64_t>(t.prompt.size()) > ctx.model.config().n_ctx)
            throw InputError("retrieval: the template, needle and question alone take " + std::to_string(t.prompt.size()) +
                             " tokens, more than the model's context of " + std::to_string(ctx.model.config().n_ctx));
          // Where the needle sentence roughly lies (after the template's text before {context}), to pick
          // the answer's occurrence inside it when it occurs more than once.
          const int64_t approxBegin = static_cast<int64_t>(tok.encode(lead + prefix, true).size()) - 1;
          const int64_t approxEnd = static_cast<int64_t>(tok.encode(lead + prefix + nd, true).size()) + 1;
          std::tie(t.needleBegin, t.needleEnd) = answerSpan(tok, t.prompt, ans, approxBegin, approxEnd);
          t.answer = ans;
          t.length = static_cast<int64_t>(t.prompt.size());
          t.depth = dep.get<double>();
          tests.push_back(std::move(t));
        }
      }
    }
    return tests;
  }

  Decoded decode(ProbeContext& ctx, const nlohmann::json& p, const NiahTest& t, const std::vector<Intervention>& masks) {
    NiahDecoding d = decodeNiah(ctx.model, *ctx.tokenizer, t.prompt, t.needleBegin, t.needleEnd, masks, p["max_new_tokens"].get<int64_t>(),
                                p["prefill_chunk"].get<int64_t>());
    return {d.text, d.score};
  }

  bool passes(const nlohmann::json& p, const std::string& answer, const Decoded& d) const {
    return rouge1Recall(d.text, answer) > p["rouge_threshold"].get<double>();
  }

  double accuracy(ProbeContext& ctx, const nlohmann::json& p, const std::vector<NiahTest>& tests, const std::vector<Intervention>& masks) {
    int ok = 0;
    for (const auto& t : tests) ok += passes(p, t.answer, decode(ctx, p, t, masks));
    return static_cast<double>(ok) / tests.size();
  }

  static std::vector<Intervention> masksFor(const std::vector<int64_t>& flat, InterventionKind kind, int64_t H) {
    std::vector<Intervention> ivs;
    for (int64_t k : flat) ivs.push_back(Intervention{kind, static_cast<int>(k / H), {static_cast<int>(k % H)}});
    return ivs;
  }

  // Accuracy with K random heads masked, drawn from `pool`: a new draw for every test (the reference),
  // or one draw for all tests. Records the heads drawn.
  double randomAccuracy(ProbeContext& ctx, const nlohmann::json& p, const std::vector<NiahTest>& tests, std::vector<int64_t> pool,
                        int64_t K, InterventionKind kind, std::mt19937_64& rng, nlohmann::json& drawn) {
    const int64_t H = ctx.model.config().n_heads;
    const bool perTest = p["random_per_test"];
    auto draw = [&] {
      std::shuffle(pool.begin(), pool.end(), rng);
      return std::vector<int64_t>(pool.begin(), pool.begin() + std::min<int64_t>(K, static_cast<int64_t>(pool.size())));
    };
    std::vector<int64_t> heads = draw();
    int ok = 0;
    for (size_t i = 0; i < tests.size(); ++i) {
      if (perTest && i > 0) heads = draw();
      if (perTest || i == 0) drawn.push_back(heads);
      ok += passes(p, tests[i].answer, decode(ctx, p, tests[i], masksFor(heads, kind, H)));
    }
    return static_cast<double>(ok) / tests.size();
  }

  nlohmann::json maskingExperiment(ProbeContext& ctx, const nlohmann::json& p, const std::vector<NiahTest>& tests,
                                   const at::Tensor& order, int64_t K, bool adaptive, int64_t retrievalHeads) {
    // adaptive: the smallest k in [1, K] whose masking drops accuracy by at least 0.5.
    const int64_t H = ctx.model.config().n_heads, total = order.size(0);
    K = std::min(K, total);
    const InterventionKind kind = interventionKindFromString(p["mask_kind"].get<std::string>());
    reportProgress(ctx, 0.75, "masking the top heads");
    const double base = accuracy(ctx, p, tests, {});
    std::vector<int64_t> top;
    double topAcc = base;
    nlohmann::json curve = nlohmann::json::array();
    for (int64_t i = 0; i < K; ++i) {
      top.push_back(order[i].item<int64_t>());
      if (!adaptive && i + 1 < K) continue;
      topAcc = accuracy(ctx, p, tests, masksFor(top, kind, H));
      curve.push_back({{"k", i + 1}, {"accuracy", topAcc}});
      if (adaptive && base - topAcc >= 0.5) break;
    }
    K = static_cast<int64_t>(top.size());
    // The reference draws random heads outside its top 100; a small model has fewer heads, so the
    // exclusion is capped to leave K heads to draw from, and never less than the top K. non_retrieval:
    // outside every head that scores as a retrieval head.
    const std::string poolKind = p["random_pool"];
    if (poolKind != "outside_top" && poolKind != "non_retrieval")
      throw InputError("retrieval: random_pool must be outside_top or non_retrieval, got '" + poolKind + "'");
    const int64_t excluded = poolKind == "non_retrieval"
                                 ? std::max<int64_t>(K, retrievalHeads)
                                 : std::max<int64_t>(K, std::min<int64_t>(p["random_exclude_top"].get<int64_t>(), total - K));
    if (excluded >= total) throw InputError("retrieval: no heads are left to draw random heads from (random_pool " + poolKind + ")");
    std::vector<int64_t> pool;
    for (int64_t i = excluded; i < total; ++i) pool.push_back(order[i].item<int64_t>());
    std::mt19937_64 rng(p["seed"].get<uint64_t>());
    nlohmann::json draws = nlohmann::json::array();
    double randomSum = 0;
    const int n = std::max(1, p["random_draws"].get<int>());
    for (int d = 0; d < n; ++d) {
      reportProgress(ctx, 0.8 + 0.2 * d / n, "masking random heads, repetition " + std::to_string(d + 1));
      nlohmann::json heads = nlohmann::json::array();
      const double acc = randomAccuracy(ctx, p, tests, pool, K, kind, rng, heads);
      randomSum += acc;
      draws.push_back({{"heads", heads}, {"accuracy", acc}});
    }
    return {{"kind", toString(kind)},
            {"k", K},
            {"applied", "decoding only (the last prompt token and every generated token)"},
            {"random_pool", poolKind},
            {"random_excluded_top", excluded},
            {"random_per_test", p["random_per_test"]},
            {"accuracy_unmasked", base},
            {"accuracy_top_k_masked", topAcc},
            {"accuracy_random_k_masked", randomSum / n},
            {"top_heads", top},
            {"random_draws", draws},
            {"top_k_curve", curve},
            {"k_rule", adaptive ? "smallest K whose masking drops accuracy by at least 0.5" : "given"}};
  }
};

void registerProbes_retrieval(ProbeRegistry& r) { r.add("retrieval", [] { return std::make_unique<RetrievalProbe>(); }); }

}  // namespace headlab::plugins
