// Streaming vs retrieval heads, DuoAttention's cheap heuristic (PROBES.md §1.4): per head, the
// fraction of attention mass inside "sink + recent window" (first `sink` keys plus the last
// `recent` keys of each query). High = streaming head, low = retrieval head. Windows default to
// 128 / 256 and shrink for short prompts (sink = min(128, T/16), recent = min(256, T/4)).
// The grid is per query head; `kv_grid` averages each kv group (the granularity DuoAttention uses),
// and `tsv` is its full_attention_heads.tsv form (1 - fraction: layer rows x kv-head columns).
// `import_tsv` reads a DuoAttention full_attention_heads.tsv (from their released gates or from
// another run), checks its shape against the model and compares it with the heuristic.
// `optimize_gates` runs DuoAttention's full method (see optimizeGates), reports the raw gates (`tsv`,
// as the reference saves them) and their binarisation (`tsv_binary`, at gate_threshold or at the
// gate_sparsity quantile). An imported pattern's config.json gives its sink and recent sizes.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
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
            {"gate_steps", 2000, "gate optimisation steps (the released patterns' 2000)"},
            {"gate_lr", 0.02, "peak learning rate (AdamW, warm-up and warm-down over a fifth of the steps each)"},
            {"gate_l1", 0.05, "weight of mean|alpha| in the gate loss (reg_weight)"},
            {"gate_init", 1.0, "initial gate value (initial_value)"},
            {"gate_threshold", 0.5, "gates >= this are full-attention heads"},
            {"gate_sparsity", -1.0, "binarise at this quantile of the gates instead (0..1; -1 = use gate_threshold)"},
            {"prompts", nlohmann::json::array(), "prompt set (empty = built-in)"},
            {"prompt_ids", nlohmann::json::array(), "prompts as token ids, one list each (instead of prompts; no tokenizer needed)"}};
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
    const auto& c = ctx.model.config();
    // Read the import first: a wrong file fails before any forward runs.
    const std::string importPath = p["import_tsv"].get<std::string>();
    at::Tensor imported = importPath.empty() ? at::Tensor() : readDuoTsv(importPath, c.n_layers, c.n_kv_heads);
    nlohmann::json importedConfig = importPath.empty() ? nlohmann::json() : readDuoConfig(importPath);
    // A pattern's own sink and recent sizes (its config.json) apply unless the parameters set them.
    if (importedConfig.contains("sink_size") && p["sink"].get<int64_t>() < 0) p["sink"] = importedConfig["sink_size"];
    if (importedConfig.contains("recent_size") && p["recent"].get<int64_t>() < 0) p["recent"] = importedConfig["recent_size"];
    const auto ids = promptIds(ctx, p);
    at::Tensor frac = at::zeros({c.n_layers, c.n_heads}, at::kDouble);
    int64_t usedSink = 0, usedRecent = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      reportProgress(ctx, static_cast<double>(i) / ids.size(), "prompt " + std::to_string(i + 1));
      const int64_t T = static_cast<int64_t>(ids[i].size());
      usedSink = p["sink"].get<int64_t>() >= 0 ? p["sink"].get<int64_t>() : std::max<int64_t>(1, std::min<int64_t>(128, T / 16));
      usedRecent = p["recent"].get<int64_t>() >= 0 ? p["recent"].get<int64_t>() : std::max<int64_t>(1, std::min<int64_t>(256, T / 4));
      // Per query row, the mass inside sink + recent window, summed over rows block by block (no
      // [T, T] held past a few thousand tokens: forEachPatternBlock), then averaged over the T rows.
      at::Tensor inside = at::zeros({c.n_layers, c.n_heads}, at::kFloat);
      const at::Tensor k = at::arange(T).unsqueeze(0);
      forEachPatternBlock(ctx.model, ids[i], [&](int l, int64_t r0, const at::Tensor& rows) {
        const at::Tensor q = at::arange(r0, r0 + rows.size(1)).unsqueeze(1);
        const at::Tensor window = (k < usedSink).logical_or(q - k < usedRecent).logical_and(k <= q).to(at::kFloat);  // [rows, k]
        inside[l] += (rows * window).sum(-1).sum(-1);
      });
      frac += (inside / static_cast<double>(T)).to(at::kDouble) / static_cast<double>(ids.size());
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
    if (p["optimize_gates"].get<bool>()) out["gates"] = optimizeGates(ctx, p, ids, usedSink, usedRecent);
    if (imported.defined()) {
      // DuoAttention's value is the gate of full attention: compare with 1 - streaming fraction.
      at::Tensor mine = (1.0 - kv).flatten(), theirs = imported.flatten();
      at::Tensor a = mine - mine.mean(), b = theirs - theirs.mean();
      const double denom = std::sqrt((a * a).sum().item<double>() * (b * b).sum().item<double>());
      const double agree = ((mine > 0.5) == (theirs > 0.5)).to(at::kDouble).mean().item<double>();
      out["imported"] = {{"path", importPath},
                         {"config", importedConfig},
                         {"grid", gridJson("duo_full_attention_gate", imported)},
                         {"full_attention_kv_heads", (theirs > 0.5).sum().item<int64_t>()},
                         {"pearson_with_heuristic", denom > 0 ? (a * b).sum().item<double>() / denom : 0.0},
                         {"agreement_at_0_5", agree}};
    }
    return out;
  }

  // DuoAttention's learning-rate factor at optimiser step `step` (0-based) of `steps`: a linear warm-up
  // over the first fifth, a linear warm-down over the last fifth, never below 0.1 (train.py's LambdaLR).
  static double duoLrFactor(int64_t step, int64_t steps) {
    const double ramp = static_cast<double>(std::max<int64_t>(1, steps / 5));  // the reference divides by steps // 5
    return std::min({1.0, std::max((step + 1) / ramp, 0.1), std::max((steps - step) / ramp, 0.1)});
  }

  // Binarises gates as duo_attn.utils.sparsify_attention_heads: 1 where the gate is >= the threshold, or
  // >= the `sparsity` quantile of all gates (numpy's linear interpolation) when sparsity is given.
  // The reference adds uniform noise below 1e-6 to break ties at random; HeadLab breaks none (ties stay together).
  static at::Tensor binariseGates(const at::Tensor& gates, double threshold, double sparsity) {
    if (sparsity >= 0) {
      if (sparsity >= 1) return at::zeros_like(gates);
      if (sparsity <= 0) return at::ones_like(gates);
      at::Tensor sorted = std::get<0>(gates.flatten().sort());
      const double pos = sparsity * static_cast<double>(sorted.numel() - 1);
      const int64_t lo = static_cast<int64_t>(std::floor(pos)), hi = std::min<int64_t>(lo + 1, sorted.numel() - 1);
      threshold = sorted[lo].item<double>() + (pos - static_cast<double>(lo)) * (sorted[hi].item<double>() - sorted[lo].item<double>());
    }
    return (gates >= threshold).to(at::kDouble);
  }

  // The teacher (full attention, no gradient): every layer's z and the final normalised hidden states
  // of each prompt.
  static void teacherRuns(HookedTransformer& m, const std::vector<std::vector<int64_t>>& ids, std::vector<std::vector<at::Tensor>>& teacherZ,
                          std::vector<at::Tensor>& targets) {
    const int L = static_cast<int>(m.config().n_layers);
    for (const auto& prompt : ids) {
      c10::NoGradGuard noGrad;  // not InferenceMode: these meet autograd tensors later
      std::vector<at::Tensor> z(static_cast<size_t>(L));
      at::Tensor h;
      std::vector<HookHandle> hs;
      for (int l = 0; l < L; ++l)
        hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Z), [&z, l](at::Tensor& t, const HookContext&) { z[l] = t.clone(); }));
      hs.push_back(m.hooks().add(m.hooks().idOf(GlobalHook::LnFinal), [&h](at::Tensor& t, const HookContext&) { h = t.to(at::kFloat).clone(); }));
      m.forward(at::tensor(prompt, at::kLong).unsqueeze(0));
      teacherZ.push_back(std::move(z));
      targets.push_back(h);
    }
  }

  // DuoAttention's gate optimisation (duo_attn/train.py, patch/llama.py's two-way forward): one gate per
  // kv head. A teacher run with full attention (no gradient) gives, per layer, each head's attention
  // output z and, at the end, the final hidden states after the final norm. The student run replaces
  // each head's output by alpha * (the teacher's z at that layer) + (1 - alpha) * (its own streaming
  // attention: softmax over sink + recent keys). Loss: mean squared distance of the final hidden states
  // on the answer positions (the last quarter of each prompt) + l1 * mean|alpha|. AdamW without weight
  // decay, train.py's warm-up/warm-down schedule, gates clamped to [0, 1] before each step (the values
  // after the last step are reported raw, as the reference saves them).
  static nlohmann::json optimizeGates(ProbeContext& ctx, const nlohmann::json& p, const std::vector<std::vector<int64_t>>& ids,
                                      int64_t sink, int64_t recent) {
    c10::InferenceMode off(false);  // callers (the GUI worker) may run probes in inference mode
    HookedTransformer& m = ctx.model;
    if (m.weights().embed.is_inference())
      throw InputError("the gate optimisation needs a model loaded outside inference mode (its weights are inference tensors)");
    const auto& c = m.config();
    const int64_t L = c.n_layers, KV = c.n_kv_heads, G = c.n_heads / c.n_kv_heads;
    const int finalNorm = m.hooks().idOf(GlobalHook::LnFinal);
    std::vector<std::vector<at::Tensor>> teacherZ;
    std::vector<at::Tensor> targets;
    teacherRuns(m, ids, teacherZ, targets);
    const double initial = p["gate_init"].get<double>();
    at::Tensor alpha = at::full({L, KV}, initial, at::TensorOptions().dtype(at::kFloat).device(m.device())).requires_grad_(true);
    at::Tensor m1 = at::zeros_like(alpha), m2 = at::zeros_like(alpha);
    std::vector<at::Tensor> scores(static_cast<size_t>(L));
    at::Tensor hidden;
    size_t current = 0;  // the prompt of this step, whose teacher z the hooks read
    std::vector<HookHandle> hs;
    for (int l = 0; l < L; ++l) {
      hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::AttnScores), [&scores, l](at::Tensor& s, const HookContext&) { scores[l] = s; }));
      hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Pattern), [&, l](at::Tensor& pat, const HookContext&) {
        // The student's own streaming attention (z is linear in the pattern).
        const int64_t T = pat.size(2), S = pat.size(3);
        at::Tensor q = at::arange(T, at::TensorOptions().device(pat.device())).unsqueeze(1), k = at::arange(S, at::TensorOptions().device(pat.device())).unsqueeze(0);
        at::Tensor outside = (k < sink).logical_or(q - k < recent).logical_not();
        pat = at::softmax(scores[l].masked_fill(outside, -std::numeric_limits<double>::infinity()), -1).to(pat.scalar_type());
      }));
      hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Z), [&, l](at::Tensor& z, const HookContext&) {
        at::Tensor a = alpha[l].repeat_interleave(G).view({1, 1, -1, 1}).to(z.scalar_type());  // [1, 1, head, 1]
        z = a * teacherZ[current][l].to(z.scalar_type()) + (1 - a) * z;
      }));
    }
    hs.push_back(m.hooks().add(finalNorm, [&hidden](at::Tensor& t, const HookContext&) { hidden = t; }));
    const int64_t steps = p["gate_steps"].get<int64_t>();
    const double lr = p["gate_lr"], l1 = p["gate_l1"], beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    double last = 0;
    for (int64_t step = 0; step < steps; ++step) {
      current = static_cast<size_t>(step) % ids.size();
      const int64_t T = static_cast<int64_t>(ids[current].size()), from = T - std::max<int64_t>(1, T / 4);
      {
        c10::NoGradGuard noGrad;
        alpha.clamp_(0, 1);
      }
      c10::AutoGradMode grad(true);
      m.forward(at::tensor(ids[current], at::kLong).unsqueeze(0));
      at::Tensor loss = (hidden.slice(1, from).to(at::kFloat) - targets[current].slice(1, from)).pow(2).mean() + l1 * alpha.abs().mean();
      if (alpha.grad().defined()) alpha.mutable_grad().zero_();
      loss.backward();
      {
        c10::NoGradGuard noGrad;
        const at::Tensor& g = alpha.grad();
        const double rate = lr * duoLrFactor(step, steps);
        m1.mul_(beta1).add_(g, 1 - beta1);
        m2.mul_(beta2).addcmul_(g, g, 1 - beta2);
        alpha.addcdiv_(m1 / (1 - std::pow(beta1, step + 1)), (m2 / (1 - std::pow(beta2, step + 1))).sqrt_().add_(eps), -rate);
      }
      last = loss.item<double>();
      if ((step + 1) % 10 == 0 || step + 1 == steps)
        reportProgress(ctx, static_cast<double>(step + 1) / steps, "gate optimisation, step " + std::to_string(step + 1) + ", loss " + std::to_string(last));
    }
    at::Tensor gates = alpha.detach().to(at::kCPU, at::kDouble);
    at::Tensor binary = binariseGates(gates, p["gate_threshold"].get<double>(), p["gate_sparsity"].get<double>());
    return {{"grid", gridJson("duo_gate", gates)},
            {"binary", gridJson("duo_full_attention", binary)},
            {"full_attention_kv_heads", binary.sum().item<int64_t>()},
            {"sparsity", 1.0 - binary.mean().item<double>()},
            {"tsv", duoTsv(gates)},
            {"tsv_binary", duoTsv(binary)},
            {"final_loss", last},
            {"steps", steps}};
  }

  // The prompts as token ids: `prompt_ids` when given, else `prompts` (or the built-in set) encoded.
  static std::vector<std::vector<int64_t>> promptIds(ProbeContext& ctx, const nlohmann::json& p) {
    std::vector<std::vector<int64_t>> ids;
    const int64_t maxTokens = p["max_tokens"].get<int64_t>();
    if (p["prompt_ids"].is_array() && !p["prompt_ids"].empty()) {
      for (const auto& list : p["prompt_ids"]) {
        if (!list.is_array() || list.empty()) throw InputError("prompt_ids: each prompt is a non-empty list of token ids");
        ids.push_back(list.get<std::vector<int64_t>>());
        if (maxTokens > 0 && static_cast<int64_t>(ids.back().size()) > maxTokens) ids.back().resize(static_cast<size_t>(maxTokens));
      }
      return ids;
    }
    if (!ctx.tokenizer) throw InputError("the model has no tokenizer: give the prompts as prompt_ids");
    for (const auto& text : promptsFrom(p)) ids.push_back(encodePrompt(*ctx.tokenizer, text, maxTokens));
    return ids;
  }

  // The config.json DuoAttention saves next to full_attention_heads.tsv (sink_size, recent_size, lr, …);
  // empty when there is none.
  static nlohmann::json readDuoConfig(const std::string& tsvPath) {
    const std::filesystem::path cfg = std::filesystem::path(tsvPath).parent_path() / "config.json";
    if (!std::filesystem::exists(cfg)) return nlohmann::json::object();
    std::ifstream in(cfg);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw InputError(cfg.string() + ": not a JSON object");
    for (const char* key : {"sink_size", "recent_size"})
      if (j.contains(key) && !(j[key].is_number_integer() && j[key].get<int64_t>() >= 0))
        throw InputError(cfg.string() + ": " + key + " must be a non-negative integer");
    return j;
  }

  // Parses full_attention_heads.tsv: `layers` rows of `kvHeads` tab- or space-separated numbers,
  // clipped to [0, 1] as the reference's load_attn_pattern does (saved gates are raw).
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
    return at::tensor(values, at::kDouble).view({layers, kvHeads}).clamp(0, 1);
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
