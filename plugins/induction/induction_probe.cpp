// Induction, previous-token and duplicate-token heads: TransformerLens's head detector
// (head_detector.py; Olsson et al.), PROBES.md §3. Input: BOS + R + R with R random tokens of length n,
// or the given sequences. Detection patterns from the tokens: previous P[i, i-1] = 1; duplicate
// P[i, j] = 1 where token j equals token i (j < i); induction = duplicate shifted one key right.
//   score = "transformer_lens" (default, the reference): sum(A * P) / sum(A) over the whole pattern
//           (a perfect induction head on BOS + R + R scores n / (2n + 1)); error_measure "abs":
//           1 - round(sum|A - P| / T, 3); exclude_bos / exclude_current_token zero key 0 / the diagonal.
//   score = "mean": the mean over the rows that have a target of A[i, target] (a perfect head scores 1;
//           duplicates by the fixed offset n), HeadLab's earlier score.
// Scores of several sequences are averaged, as detect_head does for a list.
#include <ATen/ATen.h>

#include <cmath>

#include "../common/probe_util.h"
#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/tokenizer.h"

namespace headlab::plugins {

namespace {
// The three detection patterns of head_detector.py for one sequence: [3 (previous, duplicate, induction), T, T].
at::Tensor detectionPatterns(const std::vector<int64_t>& ids) {
  const int64_t T = static_cast<int64_t>(ids.size());
  at::Tensor tok = at::tensor(ids, at::kLong);
  at::Tensor previous = at::zeros({T, T});
  if (T > 1) previous.slice(0, 1).slice(1, 0, T - 1).copy_(at::eye(T - 1));
  at::Tensor duplicate = tok.unsqueeze(1).eq(tok.unsqueeze(0)).to(at::kFloat).tril(-1);  // j < i, same token
  at::Tensor induction = at::zeros({T, T});
  if (T > 1) induction.slice(1, 1).copy_(duplicate.slice(1, 0, T - 1));  // shifted one key right, key 0 empty
  return at::stack({previous, duplicate, induction.tril()});
}

struct ScoreOptions {
  bool excludeBos = false, excludeCurrent = false, abs = false;
};

// Rows [r0, r1) of the three detection patterns: [3, rows, T] (detectionPatterns without [T, T]).
at::Tensor detectionRows(const std::vector<int64_t>& ids, int64_t r0, int64_t r1) {
  const int64_t T = static_cast<int64_t>(ids.size());
  const at::Tensor tok = at::tensor(ids, at::kLong);
  const at::Tensor i = at::arange(r0, r1, at::kLong).unsqueeze(1), j = at::arange(T, at::kLong).unsqueeze(0);
  const at::Tensor previous = (j == i - 1).to(at::kFloat);
  const at::Tensor duplicate = (tok.slice(0, r0, r1).unsqueeze(1) == tok.unsqueeze(0)).logical_and(j < i).to(at::kFloat);
  // induction[i, j] = duplicate[i, j - 1] for j >= 1, kept where j <= i.
  at::Tensor induction = at::zeros({r1 - r0, T});
  if (T > 1) induction.slice(1, 1).copy_(duplicate.slice(1, 0, T - 1));
  induction = induction * (j <= i).to(at::kFloat);
  return at::stack({previous, duplicate, induction});
}

// The scores' sums over row blocks, per layer and head, for patterns too long to hold whole:
// transformer_lens mul: sum(A * P) and sum(A); abs: sum|A - P|; mean: the targets' sums and counts.
struct BlockSums {
  BlockSums(int64_t layers, int64_t heads)
      : whole(static_cast<size_t>(layers), false), num(at::zeros({layers, 3, heads}, at::kDouble)), den(at::zeros({layers, heads}, at::kDouble)),
        cells(at::zeros({layers, 3}, at::kDouble)) {}
  std::vector<bool> whole;
  at::Tensor num, den, cells;

  void add(int l, int64_t r0, at::Tensor A, const at::Tensor& P, const ScoreOptions& o, bool mean, int64_t n) {
    const int64_t rows = A.size(1);
    const at::Tensor i = at::arange(r0, r0 + rows, at::kLong);
    if (mean) {  // targets: induction (i, i-n+1) and duplicate (i, i-n) for i >= 1+n; previous (i, i-1) for i >= 1
      const int64_t offsets[3] = {1, n, n - 1};  // previous, duplicate, induction: key = i - offset
      const int64_t firstRow[3] = {1, 1 + n, 1 + n};
      for (int k = 0; k < 3; ++k) {
        const at::Tensor sel = i.masked_select(i >= firstRow[k]);
        if (sel.numel() == 0) continue;
        num[l][k] += A.index({at::indexing::Slice(), sel - r0, sel - offsets[k]}).sum(-1).to(at::kDouble);
        cells[l][k] += static_cast<double>(sel.numel());
      }
      return;
    }
    A = A.clone();
    const auto exclude = [&](at::Tensor& x) {
      if (o.excludeBos) x.select(-1, 0).zero_();
      if (o.excludeCurrent) x.index_put_({at::indexing::Slice(), i - r0, i}, 0.0);
    };
    if (o.abs) {
      for (int k = 0; k < 3; ++k) {
        at::Tensor d = (A - P[k]).abs();
        exclude(d);
        num[l][k] += d.sum({1, 2}).to(at::kDouble);
      }
      return;
    }
    exclude(A);
    for (int k = 0; k < 3; ++k) num[l][k] += (A * P[k]).sum({1, 2}).to(at::kDouble);
    den[l] += A.sum({1, 2}).to(at::kDouble);
  }

  void finish(int64_t l, int64_t T, const ScoreOptions& o, bool mean, double count, at::Tensor& prev, at::Tensor& dup, at::Tensor& ind) const {
    at::Tensor scores[3];
    for (int k = 0; k < 3; ++k) {
      if (mean) scores[k] = num[l][k] / cells[l][k];
      else if (o.abs) scores[k] = 1.0 - at::round(num[l][k] / static_cast<double>(T) * 1000.0) / 1000.0;
      else scores[k] = num[l][k] / den[l];
    }
    prev[l] += scores[0] / count, dup[l] += scores[1] / count, ind[l] += scores[2] / count;
  }
};

// Per head: A [head, T, T] against one detection pattern P [T, T] (head_detector's
// compute_head_attention_similarity_score).
at::Tensor similarity(at::Tensor A, const at::Tensor& P, const ScoreOptions& o) {
  const int64_t T = A.size(-1);
  auto exclude = [&](at::Tensor& x) {
    if (o.excludeBos) x.select(-1, 0).zero_();
    if (o.excludeCurrent) x.diagonal(0, -2, -1).zero_();
  };
  if (o.abs) {
    at::Tensor d = (A - P).abs();
    exclude(d);
    return 1.0 - at::round(d.sum({1, 2}) / static_cast<double>(T) * 1000.0) / 1000.0;
  }
  A = A.clone();
  exclude(A);
  return (A * P).sum({1, 2}) / A.sum({1, 2});
}

class InductionProbe : public Probe {
 public:
  std::string name() const override { return "induction"; }
  std::string description() const override {
    return "Induction, previous-token and duplicate-token scores on BOS + R + R (random tokens), as TransformerLens's head detector: "
           "sum(A * P) / sum(A) against the detection pattern (a perfect induction head scores n / (2n + 1), 0.49 for n = 20). "
           "score = mean: the mean attention on the targets instead (a perfect head scores 1; > 0.5 is a clear head).";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"seq_len", 20, "length n of the random sequence R"},
            {"batch", 8, "random sequences averaged"},
            {"seed", 0, "random seed"},
            {"min_token", -1, "smallest token id drawn (-1 = skip the first tenth of the vocabulary, where specials live)"},
            {"sequences", nlohmann::json::array(), "token id sequences to score instead of BOS + R + R (empty = random)"},
            {"score", "transformer_lens", "transformer_lens (sum(A * P) / sum(A), the reference) or mean (mean attention on the targets)"},
            {"error_measure", "mul", "transformer_lens score: mul or abs (1 - sum|A - P| / T)"},
            {"exclude_bos", false, "transformer_lens score: ignore attention to the first token"},
            {"exclude_current_token", false, "transformer_lens score: ignore attention to the query's own position"}};
  }
  ProbeSummary summarize(const nlohmann::json& r) const override {
    const auto& b = r["best"];
    return {formatText("best induction head L%lldH%lld (%.3f); best previous-token head L%lldH%lld (%.3f)",
                       b["induction"]["layer"].get<long long>(), b["induction"]["head"].get<long long>(), b["induction"]["score"].get<double>(),
                       b["previous_token"]["layer"].get<long long>(), b["previous_token"]["head"].get<long long>(),
                       b["previous_token"]["score"].get<double>()),
            {}};
  }

  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    const auto& c = ctx.model.config();
    const std::string score = p["score"], measure = p["error_measure"];
    if (score != "transformer_lens" && score != "mean") throw InputError("score must be transformer_lens or mean, got '" + score + "'");
    if (measure != "mul" && measure != "abs") throw InputError("error_measure must be mul or abs, got '" + measure + "'");
    const ScoreOptions opt{p["exclude_bos"].get<bool>(), p["exclude_current_token"].get<bool>(), measure == "abs"};
    const auto sequences = sequencesToScore(ctx, p);
    const int64_t n = p["seq_len"];
    const double count = static_cast<double>(sequences.size());
    at::Tensor ind = at::zeros({c.n_layers, c.n_heads}, at::kDouble), prev = ind.clone(), dup = ind.clone();
    for (size_t b = 0; b < sequences.size(); ++b) {
      reportProgress(ctx, static_cast<double>(b) / count, "sequence " + std::to_string(b + 1));
      const auto& ids = sequences[b];
      const int64_t T = static_cast<int64_t>(ids.size());
      const bool mean = score == "mean";  // BOS + R + R only (given sequences are refused with it)
      // Patterns arrive in row blocks (forEachPatternBlock): a whole layer at once for short sequences,
      // scored as head_detector does; past a few thousand tokens, blocks of rows whose sums add up.
      BlockSums sums(c.n_layers, c.n_heads);
      forEachPatternBlock(ctx.model, ids, [&](int l, int64_t r0, const at::Tensor& rows) {
        const at::Tensor A = rows.to(at::kFloat);  // [head, rows, k]
        if (r0 == 0 && A.size(1) == T) {  // the whole layer
          const at::Tensor P = detectionPatterns(ids);
          if (score == "transformer_lens") {
            prev[l] += similarity(A, P[0], opt).to(at::kDouble) / count;
            dup[l] += similarity(A, P[1], opt).to(at::kDouble) / count;
            ind[l] += similarity(A, P[2], opt).to(at::kDouble) / count;
          } else {
            const at::Tensor second = at::arange(1 + n, T, at::kLong), all = at::arange(1, T, at::kLong);
            ind[l] += A.index({at::indexing::Slice(), second, second - n + 1}).mean(-1).to(at::kDouble) / count;
            dup[l] += A.index({at::indexing::Slice(), second, second - n}).mean(-1).to(at::kDouble) / count;
            prev[l] += A.index({at::indexing::Slice(), all, all - 1}).mean(-1).to(at::kDouble) / count;
          }
          sums.whole[l] = true;
          return;
        }
        sums.add(l, r0, A, detectionRows(ids, r0, r0 + A.size(1)), opt, mean, n);
      });
      for (int64_t l = 0; l < c.n_layers; ++l)
        if (!sums.whole[l]) sums.finish(l, T, opt, mean, count, prev, dup, ind);
    }
    reportProgress(ctx, 1.0, "done");
    auto best = [&](const at::Tensor& g) {
      int64_t k = g.argmax().item<int64_t>();
      return nlohmann::json{{"layer", k / c.n_heads}, {"head", k % c.n_heads}, {"score", g.flatten()[k].item<double>()}};
    };
    return {{"probe", name()},          {"params", p},
            {"grid", gridJson("induction", ind)}, {"previous_token", gridJson("previous_token", prev)},
            {"duplicate_token", gridJson("duplicate_token", dup)},
            {"best", {{"induction", best(ind)}, {"previous_token", best(prev)}, {"duplicate_token", best(dup)}}}};
  }

 private:
  // The given sequences, or `batch` sequences BOS + R + R with R drawn from the seeded generator.
  std::vector<std::vector<int64_t>> sequencesToScore(ProbeContext& ctx, const nlohmann::json& p) const {
    const auto& c = ctx.model.config();
    std::vector<std::vector<int64_t>> out;
    if (!p["sequences"].empty()) {
      if (p["score"] == "mean") throw InputError("score = mean needs the BOS + R + R layout; give sequences with score = transformer_lens");
      for (const auto& s : p["sequences"]) {
        auto ids = s.get<std::vector<int64_t>>();
        if (ids.size() < 2 || static_cast<int64_t>(ids.size()) > c.n_ctx)
          throw InputError("each sequence needs 2 to " + std::to_string(c.n_ctx) + " tokens, got " + std::to_string(ids.size()));
        out.push_back(std::move(ids));
      }
      return out;
    }
    const int64_t n = p["seq_len"], batch = p["batch"];
    if (n < 2 || 1 + 2 * n > c.n_ctx) throw InputError("seq_len must be in [2, " + std::to_string((c.n_ctx - 1) / 2) + "]");
    const int64_t lo = p["min_token"].get<int64_t>() >= 0 ? p["min_token"].get<int64_t>() : std::max<int64_t>(3, c.d_vocab / 10);
    if (lo >= c.d_vocab) throw InputError("min_token must be below the vocabulary size");
    const int64_t bos = ctx.tokenizer && ctx.tokenizer->bos() >= 0 ? ctx.tokenizer->bos() : c.bos_token_id >= 0 ? c.bos_token_id : 0;
    at::Generator gen = at::detail::createCPUGenerator(p["seed"].get<uint64_t>());
    for (int64_t b = 0; b < batch; ++b) {
      at::Tensor r = at::randint(lo, c.d_vocab, {n}, gen, at::kLong);
      std::vector<int64_t> ids{bos};
      for (int rep = 0; rep < 2; ++rep)
        for (int64_t i = 0; i < n; ++i) ids.push_back(r[i].item<int64_t>());
      out.push_back(std::move(ids));
    }
    return out;
  }
};
}  // namespace

void registerProbes_induction(ProbeRegistry& r) { r.add("induction", [] { return std::make_unique<InductionProbe>(); }); }

}  // namespace headlab::plugins
