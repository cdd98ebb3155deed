// Tensor-to-view conversion, in one place: what the core computed (patterns, logits, a patching
// result, a probe's JSON, an opened session) becomes the plain data the views draw (view_data.h).
// Worker thread only (it reads tensors); include torch headers before this one.
#pragma once
#include <ATen/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "headlab/core/model_session.h"
#include "headlab/core/patching.h"
#include "headlab/views/view_data.h"

namespace headlab {
class Tokenizer;
}

namespace headlab::app::adapt {

QString q(const std::string& s);
// A tensor's values as float32 on the CPU, row-major (the views' plain vectors).
std::vector<float> values(const at::Tensor& t);

// The Model dock's summary of an opened session: source, device, config, hooks (vision ones
// prefixed "vision."), grid sizes.
views::ModelSummary modelSummary(ModelSession& session);

// Per head, from each layer's baseline pattern [head, q, k]: the mean attention to the first token
// (rows 1.., since row 0 can only see itself) and the mean row entropy.
std::pair<views::HeadScores, views::HeadScores> baselineHeadScores(const std::vector<at::Tensor>& patterns);

// The overlay's span: the patch positions of [begin, end) (a kept class token is not on the grid).
views::ImageSpan imageSpan(const VisionTowerConfig* vision, int64_t begin, int64_t end);

// One heatmap per head of a layer's pattern [head, q, k], titled "L<layer> H<head>".
std::vector<views::HeatmapData> layerPatterns(const at::Tensor& pattern, int layer, const QStringList& positions);

// The top tokens of the baseline (10) and intervened (5) last-position logits, by intervened
// probability; and the target's row (id -1 when none).
struct Predictions {
  std::vector<views::TokenProb> top;
  views::TokenProb target;
};
Predictions predictions(const at::Tensor& baselineLogits, const at::Tensor& logits, const Tokenizer& tok, int64_t targetId);

// A probe's named head grid ("grid" in its JSON), titled "<probe>: <grid>"; empty when it has none.
views::HeadScores probeGrid(const std::string& probe, const nlohmann::json& result);
// Every other [layers, heads] grid of a result (induction's previous- and duplicate-token scores, …).
std::vector<views::HeadScores> probeExtraGrids(const std::string& probe, const nlohmann::json& result);

// A sweep's grid as a heatmap, for any layout: its last axis across, the others down (labels
// joined, "L3 H2", "attn L1"), scaled 0 = corrupted, 1 = clean; the layer x head grid for the head
// view when the sweep has that shape; and the summary line (metrics, forwards, first warning).
struct PatchingViews {
  views::HeatmapData map;
  views::HeadScores heads;
  QString summary;
};
PatchingViews patchingViews(const PatchingResult& res, const std::vector<std::string>& positions, const QString& sweep,
                            const QString& answer, const QString& wrong);

}  // namespace headlab::app::adapt
