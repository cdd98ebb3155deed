// Streaming vs retrieval heads, DuoAttention's cheap heuristic (PROBES.md §1.4): per head, the
// fraction of attention mass inside "sink + recent window" (first `sink` keys plus the last
// `recent` keys of each query). High = streaming head, low = retrieval head. Windows default to
// 128 / 256 and shrink for short prompts (sink = min(128, T/16), recent = min(256, T/4)).
// The grid is per query head; `kv_grid` averages each kv group (the granularity DuoAttention uses),
// and `tsv` is its full_attention_heads.tsv form (1 - fraction: layer rows x kv-head columns).
// `import_tsv` reads a DuoAttention full_attention_heads.tsv (from their released gates or from
// another run), checks its shape against the model and compares it with the heuristic.
// `optimize_gates` runs DuoAttention's full method: one gate alpha in [0, 1] per kv head, head
// output = alpha * full attention + (1 - alpha) * streaming attention (mixed in the pattern, which
// z is linear in; the streaming pattern is the softmax of the scores restricted to sink + recent),
// loss = MSE of the final hidden states against the full model on the answer positions (the last
// quarter of each prompt) + l1 * mean|alpha|, AdamW, then binarised at 0.5.
#include <ATen/ATen.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include "../common/probe_util.h"
#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/tokenizer.h"

namespace headlab::plugins {

namespace {
class StreamingProbe : public Probe {
 public:
  std::string name() const override { return "streaming"; }
  std::string description() const override {
    return "Streaming-head heuristic: fraction of attention inside sink + recent window, per head and per kv head. "
           "Range [0, 1]; high = streaming head, low = retrieval head.";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"sink", -1, "sink tokens (-1 = min(128, T/16), at least 1)"},
            {"recent", -1, "recent window (-1 = min(256, T/4), at least 1)"},
            {"max_tokens", 512, "prompts are cut to this many tokens"},
            {"import_tsv", "", "a DuoAttention full_attention_heads.tsv to compare with (empty = none)"},
            {"optimize_gates", false, "run DuoAttention's gate optimisation (long; cancellable)"},
            {"gate_steps", 2000, "gate optimisation steps"},
            {"gate_lr", 0.02, "gate optimisation learning rate (AdamW)"},
            {"gate_l1", 0.05, "weight of mean|alpha| in the gate loss"},
            {"prompts", nlohmann::json::array(), "prompt set (empty = built-in)"}};
  }
  ProbeSummary summarize(const nlohmann::json& r) const override {
    const auto values = r["grid"]["values"].get<std::vector<double>>();
    const auto lowest = std::min_element(values.begin(), values.end()) - values.begin();
    const int64_t heads = r["grid"]["heads"].get<int64_t>();
    return {formatText("most local head %s; most far-reaching L%lldH%lld (%.3f); sink %lld + recent %lld tokens",
                       bestHeadText(r["grid"]).c_str(), static_cast<long long>(lowest / heads), static_cast<long long>(lowest % heads),
                       values.empty() ? 0.0 : values[static_cast<size_t>(lowest)], r["sink_used"].get<long long>(),
                       r["recent_used"].get<long long>()),
            {}};
  }

  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    auto prompts = promptsFrom(p);
    const auto& c = ctx.model.config();
    // Read the import first: a wrong file fails before any forward runs.
    const std::string importPath = p["import_tsv"].get<std::string>();
    at::Tensor imported = importPath.empty() ? at::Tensor() : readDuoTsv(importPath, c.n_layers, c.n_kv_heads);
    at::Tensor frac = at::zeros({c.n_layers, c.n_heads}, at::kDouble);
    int64_t usedSink = 0, usedRecent = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      reportProgress(ctx, static_cast<double>(i) / prompts.size(), "prompt " + std::to_string(i + 1));
      auto ids = encodePrompt(*ctx.tokenizer, prompts[i], p["max_tokens"].get<int64_t>());
      const int64_t T = static_cast<int64_t>(ids.size());
      usedSink = p["sink"].get<int64_t>() >= 0 ? p["sink"].get<int64_t>() : std::max<int64_t>(1, std::min<int64_t>(128, T / 16));
      usedRecent = p["recent"].get<int64_t>() >= 0 ? p["recent"].get<int64_t>() : std::max<int64_t>(1, std::min<int64_t>(256, T / 4));
      at::Tensor q = at::arange(T).unsqueeze(1), k = at::arange(T).unsqueeze(0);
      at::Tensor inside = (k < usedSink).logical_or(q - k < usedRecent).logical_and(k <= q).to(at::kFloat);  // [q, k]
      auto patterns = capturePatterns(ctx.model, ids);
      for (int64_t l = 0; l < c.n_layers; ++l)
        frac[l] += (patterns[l] * inside).sum(-1).mean(-1).to(at::kDouble) / static_cast<double>(prompts.size());
    }
    reportProgress(ctx, 1.0, "done");
    at::Tensor kv = frac.view({c.n_layers, c.n_kv_heads, c.n_heads / c.n_kv_heads}).mean(-1);
    nlohmann::json out = {{"probe", name()},
            {"params", p},
            {"sink_used", usedSink},
            {"recent_used", usedRecent},
            {"grid", gridJson("streaming_fraction", frac)},
            {"kv_grid", gridJson("streaming_fraction_kv", kv)},
            {"tsv", duoTsv(1.0 - kv)}};
    if (p["optimize_gates"].get<bool>()) out["gates"] = optimizeGates(ctx, p, prompts, usedSink, usedRecent);
    if (imported.defined()) {
      // DuoAttention's value is the gate of full attention: compare with 1 - streaming fraction.
      at::Tensor mine = (1.0 - kv).flatten(), theirs = imported.flatten();
      at::Tensor a = mine - mine.mean(), b = theirs - theirs.mean();
      const double denom = std::sqrt((a * a).sum().item<double>() * (b * b).sum().item<double>());
      const double agree = ((mine > 0.5) == (theirs > 0.5)).to(at::kDouble).mean().item<double>();
      out["imported"] = {{"path", importPath},
                         {"grid", gridJson("duo_full_attention_gate", imported)},
                         {"full_attention_kv_heads", (theirs > 0.5).sum().item<int64_t>()},
                         {"pearson_with_heuristic", denom > 0 ? (a * b).sum().item<double>() / denom : 0.0},
                         {"agreement_at_0_5", agree}};
    }
    return out;
  }

  static nlohmann::json optimizeGates(ProbeContext& ctx, const nlohmann::json& p, const std::vector<std::string>& prompts,
                                      int64_t sink, int64_t recent) {
    c10::InferenceMode off(false);  // callers (the GUI worker) may run probes in inference mode
    HookedTransformer& m = ctx.model;
    if (m.weights().embed.is_inference())
      throw InputError("the gate optimisation needs a model loaded outside inference mode (its weights are inference tensors)");
    const auto& c = m.config();
    const int64_t L = c.n_layers, KV = c.n_kv_heads, G = c.n_heads / c.n_kv_heads;
    // Targets: the full model's final hidden states on each prompt's answer positions.
    std::vector<std::vector<int64_t>> ids;
    std::vector<at::Tensor> targets;
    for (const auto& text : prompts) {
      ids.push_back(encodePrompt(*ctx.tokenizer, text, p["max_tokens"].get<int64_t>()));
      at::Tensor h;
      {
        c10::NoGradGuard noGrad;  // not InferenceMode: the targets meet autograd tensors later
        auto hook = m.hooks().add(m.hooks().idOf(static_cast<int>(L - 1), LayerHook::ResidPost),
                                  [&h](at::Tensor& t, const HookContext&) { h = t.to(at::kFloat).clone(); });
        m.forward(at::tensor(ids.back(), at::kLong).unsqueeze(0));
      }
      targets.push_back(h);
    }
    at::Tensor alpha = at::ones({L, KV}, at::TensorOptions().dtype(at::kFloat).device(m.device())).requires_grad_(true);
    at::Tensor m1 = at::zeros_like(alpha), m2 = at::zeros_like(alpha);
    std::vector<at::Tensor> scores(static_cast<size_t>(L));
    at::Tensor hidden;
    std::vector<HookHandle> hs;
    for (int l = 0; l < L; ++l) {
      hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::AttnScores), [&scores, l](at::Tensor& s, const HookContext&) { scores[l] = s; }));
      hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Pattern), [&, l](at::Tensor& pat, const HookContext&) {
        const int64_t T = pat.size(2), S = pat.size(3);
        at::Tensor q = at::arange(T, at::TensorOptions().device(pat.device())).unsqueeze(1), k = at::arange(S, at::TensorOptions().device(pat.device())).unsqueeze(0);
        at::Tensor outside = (k < sink).logical_or(q - k < recent).logical_not();
        at::Tensor stream = at::softmax(scores[l].masked_fill(outside, -std::numeric_limits<double>::infinity()), -1).to(pat.scalar_type());
        at::Tensor a = alpha[l].repeat_interleave(G).view({1, -1, 1, 1}).to(pat.scalar_type());
        pat = a * pat + (1 - a) * stream;
      }));
    }
    hs.push_back(m.hooks().add(m.hooks().idOf(static_cast<int>(L - 1), LayerHook::ResidPost), [&hidden](at::Tensor& t, const HookContext&) { hidden = t; }));
    const int steps = p["gate_steps"];
    const double lr = p["gate_lr"], l1 = p["gate_l1"], beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    double last = 0;
    for (int step = 1; step <= steps; ++step) {
      const size_t i = static_cast<size_t>(step - 1) % ids.size();
      const int64_t T = static_cast<int64_t>(ids[i].size()), from = T - std::max<int64_t>(1, T / 4);
      c10::AutoGradMode grad(true);
      m.forward(at::tensor(ids[i], at::kLong).unsqueeze(0));
      at::Tensor loss = (hidden.slice(1, from).to(at::kFloat) - targets[i].slice(1, from)).pow(2).mean() + l1 * alpha.abs().mean();
      if (alpha.grad().defined()) alpha.mutable_grad().zero_();
      loss.backward();
      {
        c10::NoGradGuard noGrad;
        const at::Tensor& g = alpha.grad();
        m1.mul_(beta1).add_(g, 1 - beta1);
        m2.mul_(beta2).addcmul_(g, g, 1 - beta2);
        alpha.addcdiv_(m1 / (1 - std::pow(beta1, step)), (m2 / (1 - std::pow(beta2, step))).sqrt_().add_(eps), -lr).clamp_(0, 1);
      }
      last = loss.item<double>();
      if (step % 10 == 0 || step == steps)
        reportProgress(ctx, static_cast<double>(step) / steps, "gate optimisation, step " + std::to_string(step) + ", loss " + std::to_string(last));
    }
    at::Tensor gates = alpha.detach().to(at::kCPU, at::kDouble);
    at::Tensor binary = (gates > 0.5).to(at::kDouble);
    return {{"grid", gridJson("duo_gate", gates)},
            {"binary", gridJson("duo_full_attention", binary)},
            {"full_attention_kv_heads", binary.sum().item<int64_t>()},
            {"tsv", duoTsv(binary)},
            {"final_loss", last},
            {"steps", steps}};
  }

  // Parses full_attention_heads.tsv: `layers` rows of `kvHeads` tab- or space-separated numbers.
  static at::Tensor readDuoTsv(const std::string& path, int64_t layers, int64_t kvHeads) {
    std::ifstream in(path);
    if (!in) throw IoError(path + ": cannot open");
    std::vector<double> values;
    std::string line;
    int64_t rows = 0;
    for (int lineNo = 1; std::getline(in, line); ++lineNo) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::istringstream cells(line);
      std::string cell;
      int64_t cols = 0;
      while (cells >> cell) {
        char* end = nullptr;
        const double v = std::strtod(cell.c_str(), &end);
        if (end == cell.c_str() || *end != '\0' || !std::isfinite(v))
          throw InputError(path + ":" + std::to_string(lineNo) + ": '" + cell + "' is not a number");
        values.push_back(v);
        ++cols;
      }
      if (cols != kvHeads)
        throw InputError(path + ":" + std::to_string(lineNo) + ": " + std::to_string(cols) + " values, the model has " +
                         std::to_string(kvHeads) + " kv heads per layer");
      ++rows;
    }
    if (rows != layers)
      throw InputError(path + ": " + std::to_string(rows) + " rows, the model has " + std::to_string(layers) + " layers");
    return at::tensor(values, at::kDouble).view({layers, kvHeads});
  }

  // DuoAttention's full_attention_heads.tsv: one row per layer, one tab-separated value per kv head.
  static std::string duoTsv(const at::Tensor& g) {
    std::ostringstream out;
    for (int64_t l = 0; l < g.size(0); ++l) {
      for (int64_t h = 0; h < g.size(1); ++h) out << (h ? "\t" : "") << g[l][h].item<double>();
      out << "\n";
    }
    return out.str();
  }
};
}  // namespace

void registerProbes_streaming(ProbeRegistry& r) { r.add("streaming", [] { return std::make_unique<StreamingProbe>(); }); }

}  // namespace headlab::plugins
