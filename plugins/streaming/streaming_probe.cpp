// Streaming vs retrieval heads, DuoAttention's cheap heuristic (PROBES.md §1.4): per head, the
// fraction of attention mass inside "sink + recent window" (first `sink` keys plus the last
// `recent` keys of each query). High = streaming head, low = retrieval head. Windows default to
// 128 / 256 and shrink for short prompts (sink = min(128, T/16), recent = min(256, T/4)).
// The grid is per query head; `kv_grid` averages each kv group (the granularity DuoAttention uses),
// and `tsv` is its full_attention_heads.tsv form (1 - fraction: layer rows x kv-head columns).
// `import_tsv` reads a DuoAttention full_attention_heads.tsv (from their released gates or from
// another run), checks its shape against the model and compares it with the heuristic.
#include <ATen/ATen.h>

#include <cmath>
#include <fstream>
#include <sstream>

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
            {"prompts", nlohmann::json::array(), "prompt set (empty = built-in)"}};
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

void registerStreamingProbe(ProbeRegistry& r) { r.add("streaming", [] { return std::make_unique<StreamingProbe>(); }); }

}  // namespace headlab::plugins
