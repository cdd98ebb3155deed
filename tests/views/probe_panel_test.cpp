// The probe panel's curve without torch: its axes fit the quantity it plots.
#include <gtest/gtest.h>

#include <qcustomplot.h>

#include "headlab/views/probe_panel.h"

namespace headlab::views {

// Issue #19: a retrieval run with one depth (or a flat accuracy) showed an axis from -15 to 15 for an
// accuracy in [0, 1].
TEST(ProbePanelTest, FractionsArePlottedOnZeroToOneAndASinglePointKeepsAReadableRange) {
  ProbePanel panel;
  panel.setCurve("NIAH accuracy", {0.5}, {1.0}, "depth", "accuracy");
  EXPECT_DOUBLE_EQ(panel.curvePlot()->yAxis->range().lower, 0.0);
  EXPECT_DOUBLE_EQ(panel.curvePlot()->yAxis->range().upper, 1.0);
  EXPECT_NEAR(panel.curvePlot()->xAxis->range().size(), 1.0, 1e-9) << "one depth: half a unit each side";
  panel.setCurve("Sink_k", {1, 2, 3, 4}, {0.02, 0.03, 0.03, 0.04}, "k", "Sink_k");
  EXPECT_DOUBLE_EQ(panel.curvePlot()->yAxis->range().upper, 1.0) << "a rate keeps its [0, 1] scale";
  panel.setCurve("logit", {1, 2, 3}, {-2.0, 5.0, 3.0}, "layer", "logit");
  EXPECT_LE(panel.curvePlot()->yAxis->range().lower, -2.0);
  EXPECT_GE(panel.curvePlot()->yAxis->range().upper, 5.0);
  EXPECT_LT(panel.curvePlot()->yAxis->range().upper, 6.0) << "other quantities fit their values";
}

}  // namespace headlab::views
