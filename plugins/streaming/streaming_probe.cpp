// Streaming vs retrieval heads, DuoAttention's cheap heuristic (PROBES.md §1.4): per head, the
// fraction of attention mass inside "sink + recent window" (first `sink` keys plus the last
// `recent` keys of each query). High = streaming head, low = retrieval head. Windows default to
// 128 / 256 and shrink for short prompts (sink = min(128, T/16), recent = min(256, T/4)).
// The grid is per query head; `kv_grid` averages each kv group (the granularity DuoAttention uses),
// and `tsv` is its full_attention_heads.tsv form (1 - fraction: layer rows x kv-head columns).
#include <ATen/ATen.h>

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
            {"prompts", nlohmann::json::array(), "prompt set (empty = built-in)"}};
  }
  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    auto prompts = promptsFrom(p);
    const auto& c = ctx.model.config();
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
    return {{"probe", name()},
            {"params", p},
            {"sink_used", usedSink},
            {"recent_used", usedRecent},
            {"grid", gridJson("streaming_fraction", frac)},
            {"kv_grid", gridJson("streaming_fraction_kv", kv)},
            {"tsv", duoTsv(1.0 - kv)}};
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
