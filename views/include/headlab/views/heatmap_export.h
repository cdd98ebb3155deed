// A heatmap as a publication figure or as numbers, written atomically (a failed write leaves no
// file): SVG with one <rect class="cell"> per cell in the colours the view draws, token labels, a
// colour bar and the metadata (model, prompt, edits) in <metadata>; CSV with the labels; NPY
// (float32, [rows, cols], numpy's format 1.0). No selection marks: figures show the data only.
#pragma once
#include <QColor>
#include <QString>

#include "headlab/views/view_data.h"

namespace headlab::views {

// The colour a cell of `d` gets in the view (viridis or RdBu by d.scale; log: 1e-4 … max).
QColor heatmapColour(const HeatmapData& d, float value, bool logScale);
bool writeHeatmapSvg(const HeatmapData& d, const QString& path, bool logScale = false, const QString& metadata = {});
bool writeHeatmapCsv(const HeatmapData& d, const QString& path);
bool writeHeatmapNpy(const HeatmapData& d, const QString& path);

}  // namespace headlab::views
