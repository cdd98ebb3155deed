// torch first: Qt's keywords break torch headers included after them.
#include <ATen/ATen.h>

#include "view_adapters.h"

#include "headlab/plugins/probe_plugin.h"

#include <algorithm>
#include <cmath>

#include "headlab/core/model_loader.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"

namespace headlab::app::adapt {

QString q(const std::string& s) { return QString::fromStdString(s); }

std::vector<float> values(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

namespace {
views::HeadScores nanGrid(int L, int H, const QString& name) {
  return views::HeadScores{L, H, std::vector<float>(static_cast<size_t>(L) * H, NAN), name, 0};
}

QString axisName(const std::string& name) { return q(name == "pos" ? "position" : name); }
}  // namespace

views::ModelSummary modelSummary(ModelSession& session) {
  HookedTransformer& model = session.model();
  const auto& c = model.config();
  views::ModelSummary s;
  s.source = q(session.loaded.source);
  s.device = q(model.device().str() + ", " + std::string(c10::toString(model.dtype())));
  s.format = q(session.loaded.format);
  nlohmann::json j = configToJson(c);
  j["tokenizer"] = session.loaded.tokenizer->kind();
  if (session.vlm) {
    const auto& vc = session.vlm->visionConfig();
    j["vision"] = {{"image_size", vc.image_size}, {"patch_size", vc.patch_size}, {"image_tokens", vc.imageTokens()},
                   {"vision_layers", session.vlm->vision().config().n_layers}, {"image_token_id", vc.image_token_id}};
    s.imageSize = static_cast<int>(vc.image_size);
    s.patchSide = static_cast<int>(vc.image_size / vc.patch_size);
    for (const auto& n : session.vlm->vision().hooks().names()) s.hookNames << q("vision." + n);
  }
  s.configJson = q(j.dump(2));
  for (const auto& n : model.hooks().names()) s.hookNames << q(n);
  s.layers = static_cast<int>(c.n_layers), s.heads = static_cast<int>(c.n_heads), s.kvHeads = static_cast<int>(c.n_kv_heads);
  return s;
}

std::pair<views::HeadScores, views::HeadScores> baselineHeadScores(const std::vector<at::Tensor>& patterns) {
  const int L = static_cast<int>(patterns.size()), H = L ? static_cast<int>(patterns[0].size(0)) : 0;
  views::HeadScores first = nanGrid(L, H, "attention to first token"), entropy = nanGrid(L, H, "attention entropy");
  for (int l = 0; l < L; ++l) {
    at::Tensor p = patterns[l].to(at::kCPU, at::kFloat);  // [head, q, k]
    at::Tensor f = p.size(1) > 1 ? p.slice(1, 1).select(2, 0).mean(1) : p.select(2, 0).mean(1);
    at::Tensor e = -(p * (p.clamp_min(1e-12)).log()).sum(-1).mean(-1);
    const std::vector<float> fv = values(f), ev = values(e);
    std::copy(fv.begin(), fv.end(), first.values.begin() + static_cast<size_t>(l) * H);
    std::copy(ev.begin(), ev.end(), entropy.values.begin() + static_cast<size_t>(l) * H);
  }
  return {first, entropy};
}

views::ImageSpan imageSpan(const VisionTowerConfig* vc, int64_t begin, int64_t end) {
  const int side = vc ? static_cast<int>(vc->image_size / vc->patch_size) : 0;
  const int firstPatch = vc && !vc->drop_class_token ? static_cast<int>(begin) + 1 : static_cast<int>(begin);
  return views::ImageSpan{firstPatch, static_cast<int>(end), side};
}

std::vector<views::HeatmapData> layerPatterns(const at::Tensor& pattern, int layer, const QStringList& positions) {
  at::Tensor p = pattern.to(at::kCPU, at::kFloat).contiguous();  // [head, q, k]
  const int H = static_cast<int>(p.size(0)), T = static_cast<int>(p.size(1));
  std::vector<views::HeatmapData> heads;
  for (int h = 0; h < H; ++h) {
    views::HeatmapData d;
    d.rows = d.cols = T;
    const float* src = p[h].data_ptr<float>();
    d.values.assign(src, src + static_cast<size_t>(T) * T);
    d.rowLabels = d.colLabels = positions;
    d.title = QString("L%1 H%2").arg(layer).arg(h);
    heads.push_back(std::move(d));
  }
  return heads;
}

Predictions predictions(const at::Tensor& baselineLogits, const at::Tensor& logits, const Tokenizer& tok, int64_t targetId) {
  at::Tensor base = at::softmax(baselineLogits.to(at::kCPU, at::kFloat), -1);
  at::Tensor now = at::softmax(logits.to(at::kCPU, at::kFloat), -1);
  std::vector<int64_t> ids;
  auto add = [&](const at::Tensor& probs, int k) {
    at::Tensor idx = std::get<1>(probs.topk(std::min<int64_t>(k, probs.size(0))));
    for (int64_t i = 0; i < idx.size(0); ++i) {
      int64_t id = idx[i].item<int64_t>();
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
  };
  add(base, 10);
  add(now, 5);
  auto row = [&](int64_t id) {
    return views::TokenProb{static_cast<int>(id), q(tok.tokenString(id)), base[id].item<float>(), now[id].item<float>()};
  };
  Predictions out;
  for (int64_t id : ids) out.top.push_back(row(id));
  std::stable_sort(out.top.begin(), out.top.end(), [](const auto& a, const auto& b) { return a.intervened > b.intervened; });
  if (targetId >= 0) out.target = row(targetId);
  return out;
}

namespace {
views::HeadScores headScores(const std::string& probe, const nlohmann::json& g) {
  views::HeadScores grid;
  grid.layers = g["layers"], grid.heads = g["heads"];
  grid.name = q(probe + ": " + g.value("name", std::string("score")));
  for (const auto& v : g["values"]) grid.values.push_back(v.is_number() ? v.get<float>() : NAN);
  return grid;
}
}  // namespace

views::HeadScores probeGrid(const std::string& probe, const nlohmann::json& r) {
  return r.contains("grid") ? headScores(probe, r["grid"]) : views::HeadScores{};
}

std::vector<views::HeadScores> probeExtraGrids(const std::string& probe, const nlohmann::json& r) {
  std::vector<views::HeadScores> out;
  for (const auto& [key, g] : plugins::headGrids(r))
    if (key != "grid") out.push_back(headScores(probe, g));
  return out;
}

namespace {
views::HeatmapData sweepHeatmap(const PatchingResult& res, const std::vector<std::string>& positions) {
  views::HeatmapData d;
  d.rowName.clear();  // the default names a pattern's query axis
  const auto& axes = res.gridAxes;
  std::vector<std::string> rows{""};
  for (size_t a = 0; a + 1 < axes.size(); ++a) {
    std::vector<std::string> next;
    for (const std::string& prefix : rows)
      for (const std::string& label : sweepAxisLabels(axes[a], positions)) next.push_back(prefix.empty() ? label : prefix + " " + label);
    rows = std::move(next);
    d.rowName += (a ? " " : "") + axisName(axes[a].name);
  }
  for (const std::string& r : rows) d.rowLabels << q(r);
  for (const std::string& c : sweepAxisLabels(axes.back(), positions)) d.colLabels << q(c);
  d.colName = axisName(axes.back().name);
  d.rows = d.rowLabels.size(), d.cols = d.colLabels.size();
  return d;
}
}  // namespace

PatchingViews patchingViews(const PatchingResult& res, const std::vector<std::string>& positions, const QString& sweep,
                            const QString& answer, const QString& wrong) {
  PatchingViews out;
  at::Tensor g = res.grid.to(at::kCPU, at::kFloat).contiguous();
  out.map = sweepHeatmap(res, positions);
  if (res.axes == std::vector<std::string>{"layer", "head"})
    out.heads = {static_cast<int>(g.size(0)), static_cast<int>(g.size(1)), values(g), q("patching (" + res.method + ")"), 0};
  views::HeatmapData& d = out.map;
  d.values = values(g);
  // NaN cells (path patching's non-senders) are not computed: the range comes from the others.
  const at::Tensor finite = g.masked_select(at::isfinite(g));
  d.minValue = std::min(0.0f, finite.numel() ? finite.min().item<float>() : 0.0f);
  d.maxValue = std::max(1.0f, finite.numel() ? finite.max().item<float>() : 1.0f);
  d.valueLabel = "0 corrupt, 1 clean";  // short: the colour scale is as tall as the map
  d.scale = views::ColourScale::Diverging;      // signed: below 0 and above 1 both happen
  d.title = QString("%1 patching, %2").arg(sweep, q(res.method));
  out.summary = QString("logit(%1) - logit(%2): clean %3, corrupted %4; %5 forwards")
                    .arg(answer, wrong).arg(res.cleanMetric, 0, 'f', 3).arg(res.corruptedMetric, 0, 'f', 3).arg(res.forwards) +
                (res.warnings.empty() ? QString() : QString("\nwarning: %1").arg(q(res.warnings.front())));
  return out;
}

}  // namespace headlab::app::adapt
