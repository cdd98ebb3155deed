// Induction, previous-token and duplicate-token heads (TransformerLens head detector; Olsson et
// al.), PROBES.md §3. Input: BOS + R + R with R random tokens of length n.
//   induction[l,h]  = mean over second-copy positions i of A[i, i - n + 1]
//   previous[l,h]   = mean over i >= 1 of A[i, i - 1]
//   duplicate[l,h]  = mean over second-copy positions i of A[i, i - n]
// Scores lie in [0, 1]; above 0.5 is a clear head of that type.
#include <ATen/ATen.h>

#include "../common/probe_util.h"
#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/tokenizer.h"

namespace headlab::plugins {

namespace {
class InductionProbe : public Probe {
 public:
  std::string name() const override { return "induction"; }
  std::string description() const override {
    return "Induction, previous-token and duplicate-token scores on BOS + R + R (random tokens). Range [0, 1]; > 0.5 is a clear head.";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"seq_len", 20, "length n of the random sequence R"},
            {"batch", 8, "random sequences averaged"},
            {"seed", 0, "random seed"},
            {"min_token", -1, "smallest token id drawn (-1 = skip the first tenth of the vocabulary, where specials live)"}};
  }
  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    const int64_t n = p["seq_len"], batch = p["batch"];
    const auto& c = ctx.model.config();
    if (n < 2 || 1 + 2 * n > c.n_ctx) throw InputError("seq_len must be in [2, " + std::to_string((c.n_ctx - 1) / 2) + "]");
    int64_t lo = p["min_token"].get<int64_t>() >= 0 ? p["min_token"].get<int64_t>() : std::max<int64_t>(3, c.d_vocab / 10);
    if (lo >= c.d_vocab) throw InputError("min_token must be below the vocabulary size");
    const int64_t bos = ctx.tokenizer && ctx.tokenizer->bos() >= 0 ? ctx.tokenizer->bos() : c.bos_token_id >= 0 ? c.bos_token_id : 0;
    at::Generator gen = at::detail::createCPUGenerator(p["seed"].get<uint64_t>());
    at::Tensor ind = at::zeros({c.n_layers, c.n_heads}, at::kDouble), prev = ind.clone(), dup = ind.clone();
    for (int64_t b = 0; b < batch; ++b) {
      reportProgress(ctx, static_cast<double>(b) / batch, "sequence " + std::to_string(b + 1));
      at::Tensor r = at::randint(lo, c.d_vocab, {n}, gen, at::kLong);
      std::vector<int64_t> ids{bos};
      for (int rep = 0; rep < 2; ++rep)
        for (int64_t i = 0; i < n; ++i) ids.push_back(r[i].item<int64_t>());
      auto patterns = capturePatterns(ctx.model, ids);
      const int64_t T = static_cast<int64_t>(ids.size());
      at::Tensor second = at::arange(1 + n, T, at::kLong);  // positions of the second copy
      at::Tensor all = at::arange(1, T, at::kLong);
      for (int64_t l = 0; l < c.n_layers; ++l) {
        const at::Tensor& A = patterns[l];  // [head, q, k]
        ind[l] += A.index({at::indexing::Slice(), second, second - n + 1}).mean(-1).to(at::kDouble) / batch;
        dup[l] += A.index({at::indexing::Slice(), second, second - n}).mean(-1).to(at::kDouble) / batch;
        prev[l] += A.index({at::indexing::Slice(), all, all - 1}).mean(-1).to(at::kDouble) / batch;
      }
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
};
}  // namespace

void registerInductionProbe(ProbeRegistry& r) { r.add("induction", [] { return std::make_unique<InductionProbe>(); }); }

}  // namespace headlab::plugins
