// The colour maps every view draws with (private to headlab_views): viridis for attention and
// scores in [0, 1], ColorBrewer's RdBu for signed results (red below 0, #f7f7f7 at 0, blue above).
#pragma once
#include <qcustomplot.h>

#include <iterator>

#include "headlab/views/view_data.h"

namespace headlab::views {

inline QCPColorGradient viridis() {
  QCPColorGradient g;
  g.setColorStopAt(0.0, QColor(68, 1, 84));
  g.setColorStopAt(0.25, QColor(59, 82, 139));
  g.setColorStopAt(0.5, QColor(33, 145, 140));
  g.setColorStopAt(0.75, QColor(94, 201, 98));
  g.setColorStopAt(1.0, QColor(253, 231, 37));
  g.setColorInterpolation(QCPColorGradient::ciRGB);
  return g;
}

inline QCPColorGradient rdBu() {
  static const char* kStops[] = {"#67001f", "#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7",
                                 "#d1e5f0", "#92c5de", "#4393c3", "#2166ac", "#053061"};
  QCPColorGradient g;
  const int n = static_cast<int>(std::size(kStops));
  for (int i = 0; i < n; ++i) g.setColorStopAt(static_cast<double>(i) / (n - 1), QColor(kStops[i]));
  g.setColorInterpolation(QCPColorGradient::ciRGB);
  return g;
}

// The range and map a heatmap's values are coloured with (heatmap_export.cpp): a diverging map is
// symmetric about 0; a log scale runs from 1e-4 to the maximum.
QCPRange heatmapRange(const HeatmapData& d, bool logScale);
QCPColorGradient heatmapGradient(const HeatmapData& d);

}  // namespace headlab::views
