#include <gtest/gtest.h>

#include <cmath>

#include <QDir>
#include <QFile>
#include <QImage>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QXmlStreamReader>

#include <qcustomplot.h>

#include "headlab/views/heatmap_view.h"

namespace headlab::views {

namespace {
HeatmapData triangle() {
  HeatmapData d;
  d.rows = d.cols = 3;
  d.values = {1, 0, 0, 0.25f, 0.75f, 0, 0.2f, 0.3f, 0.5f};
  d.rowLabels = d.colLabels = QStringList{"<s>", " Once", " upon"};
  d.title = "L0 H0";
  return d;
}
}  // namespace

TEST(HeatmapViewTest, HoldsTheGivenWeightsCellByCell) {
  HeatmapView v;
  v.resize(400, 300);
  v.setData(triangle());
  EXPECT_FLOAT_EQ(v.cellValue(1, 1), 0.75f);
  EXPECT_FLOAT_EQ(v.cellValue(2, 0), 0.2f);
  EXPECT_TRUE(std::isnan(v.cellValue(3, 0)));
  EXPECT_TRUE(v.tooltipAt(1, 0).contains("' Once'"));
  EXPECT_TRUE(v.tooltipAt(1, 0).contains("0.2500"));
}

// Signed results (patching) use a diverging map centred on 0: the range is symmetric about 0, 0 is
// drawn white-ish, negatives red and positives blue; attention keeps viridis.
TEST(HeatmapViewTest, SignedResultsUseADivergingMapCentredOnZero) {
  HeatmapView v;
  v.resize(400, 300);
  HeatmapData d = triangle();
  d.values = {-0.5f, 0, 0.2f, 1.0f, 0.4f, 0, -0.1f, 0.3f, 0.7f};
  d.minValue = -0.5f, d.maxValue = 1.0f;
  d.scale = ColourScale::Diverging;
  v.setData(d);
  auto* map = qobject_cast<QCPColorMap*>(v.plot()->plottable(0));
  ASSERT_NE(map, nullptr);
  EXPECT_DOUBLE_EQ(map->dataRange().lower, -1.0);
  EXPECT_DOUBLE_EQ(map->dataRange().upper, 1.0);
  auto colour = [&](double value) {
    QRgb rgb;
    map->gradient().colorize(&value, map->dataRange(), &rgb, 1);
    return QColor(rgb);
  };
  EXPECT_GT(colour(0).lightness(), 230) << "0 is the light centre";
  EXPECT_GT(colour(-1).red(), colour(-1).blue()) << "negative: red";
  EXPECT_GT(colour(1).blue(), colour(1).red()) << "positive: blue";
  v.setData(triangle());
  EXPECT_DOUBLE_EQ(map->dataRange().lower, 0.0) << "attention keeps its [0, 1] viridis range";
  EXPECT_LT(colour(0).lightness(), 100) << "viridis starts dark";
}

// Issue #19: on a log scale the colour bar kept linear ticks, crammed at its top end.
TEST(HeatmapViewTest, ALogScaleBarHasDecadeTicks) {
  HeatmapView v;
  v.resize(500, 400);
  v.show();
  v.setData(triangle());
  v.setLogScale(true);
  v.plot()->replot();
  QCPColorScale* bar = nullptr;
  for (int i = 0; i < v.plot()->plotLayout()->elementCount(); ++i)
    if (auto* s = qobject_cast<QCPColorScale*>(v.plot()->plotLayout()->elementAt(i))) bar = s;
  ASSERT_NE(bar, nullptr);
  EXPECT_EQ(bar->axis()->scaleType(), QCPAxis::stLogarithmic);
  const QVector<double> ticks = bar->axis()->tickVector();
  ASSERT_GE(ticks.size(), 3);
  for (double t : ticks) EXPECT_NEAR(std::log10(t), std::round(std::log10(t)), 1e-9) << t << " is not a decade";
  v.setLogScale(false);
  v.plot()->replot();
  EXPECT_EQ(bar->axis()->scaleType(), QCPAxis::stLinear);
  EXPECT_TRUE(qSharedPointerDynamicCast<QCPAxisTickerLog>(bar->axis()->ticker()).isNull());
}

TEST(HeatmapViewTest, ExportsPngAndPdf) {
  QTemporaryDir dir;
  HeatmapView v;
  v.resize(400, 300);
  v.setData(triangle());
  ASSERT_TRUE(v.exportTo(dir.filePath("map.png"), 500, 400));
  QImage img(dir.filePath("map.png"));
  EXPECT_EQ(img.width(), 500);
  ASSERT_TRUE(v.exportTo(dir.filePath("map.pdf"), 500, 400));
  QFile pdf(dir.filePath("map.pdf"));
  ASSERT_TRUE(pdf.open(QIODevice::ReadOnly));
  EXPECT_TRUE(pdf.read(5).startsWith("%PDF-"));
  EXPECT_FALSE(QFile::exists(dir.filePath(".map.pdf.part")));
  // A valid PDF opens and has a page (poppler's pdfinfo, installed by the install script).
  QProcess info;
  info.start("pdfinfo", {dir.filePath("map.pdf")});
  ASSERT_TRUE(info.waitForFinished(10000));
  const QString out = QString::fromUtf8(info.readAllStandardOutput());
  EXPECT_EQ(info.exitCode(), 0) << out.toStdString();
  EXPECT_TRUE(out.contains(QRegularExpression("Pages:\\s+1"))) << out.toStdString();
}

// Issues #19 and #22: any heatmap exports as a vector SVG (one rect per cell, in the view's colours,
// parsed here by QXmlStreamReader), with the metadata in PNG, PDF and SVG, and as CSV / NPY; no
// selection mark in a figure.
TEST(HeatmapViewTest, ExportsSvgCellsCsvNpyAndMetadataWithoutTheSelectionMark) {
  QTemporaryDir dir;
  HeatmapView v;
  v.resize(400, 300);
  HeatmapData d = triangle();
  d.rows = 2, d.cols = 3;  // a patching-like signed 2 x 3 map
  d.values = {-0.5f, 0.0f, 1.0f, 0.25f, NAN, -1.0f};
  d.rowLabels = {"L0", "L1"}, d.colLabels = {"<s>", "a & b", "\"c\""};
  d.minValue = -1.0f, d.maxValue = 1.0f, d.scale = ColourScale::Diverging;
  v.setData(d);
  v.setHighlightRow(1);
  v.setExportMetadata("model demo; prompt 'x'; edits zero:1.5");
  const QString svg = dir.filePath("map.svg");
  ASSERT_TRUE(v.exportTo(svg, 800, 600));
  QFile f(svg);
  ASSERT_TRUE(f.open(QIODevice::ReadOnly));
  QXmlStreamReader xml(&f);
  std::vector<QString> fills;
  QString metadata;
  while (!xml.atEnd()) {
    xml.readNext();
    if (xml.isStartElement() && xml.name() == QLatin1String("rect") && xml.attributes().value("class").startsWith(QLatin1String("cell")))
      fills.push_back(xml.attributes().value("fill").toString());
    if (xml.isStartElement() && xml.name() == QLatin1String("metadata")) metadata = xml.readElementText();
  }
  ASSERT_FALSE(xml.hasError()) << xml.errorString().toStdString();
  ASSERT_EQ(fills.size(), 6u) << "one rect per cell";
  // QCustomPlot colours from a 350-level table: within a few units of the ColorBrewer stops.
  auto near = [](const QString& got, const char* want) {
    const QColor a(got), b(want);
    return std::abs(a.red() - b.red()) <= 3 && std::abs(a.green() - b.green()) <= 3 && std::abs(a.blue() - b.blue()) <= 3;
  };
  EXPECT_TRUE(near(fills[1], "#f7f7f7")) << fills[1].toStdString() << ": 0 is the diverging map's white centre";
  EXPECT_TRUE(near(fills[2], "#053061")) << fills[2].toStdString() << ": +1 is RdBu's darkest blue";
  EXPECT_TRUE(near(fills[5], "#67001f")) << fills[5].toStdString() << ": -1 its darkest red";
  EXPECT_EQ(fills[4], "#ebebeb") << "NaN: marked grey";
  EXPECT_EQ(metadata, "model demo; prompt 'x'; edits zero:1.5");

  ASSERT_TRUE(v.exportTo(dir.filePath("map.png"), 500, 400));
  EXPECT_EQ(QImage(dir.filePath("map.png")).text("Description"), "model demo; prompt 'x'; edits zero:1.5");
  EXPECT_EQ(v.highlightRow(), 1) << "the selection is back in the view after the export";

  ASSERT_TRUE(v.exportValues(dir.filePath("map.csv")));
  QFile csv(dir.filePath("map.csv"));
  ASSERT_TRUE(csv.open(QIODevice::ReadOnly));
  EXPECT_EQ(QString::fromUtf8(csv.readAll()), "query\\key,<s>,a & b,\"\"\"c\"\"\"\nL0,-0.5,0,1\nL1,0.25,nan,-1\n");
  ASSERT_TRUE(v.exportValues(dir.filePath("map.npy")));
  QProcess py;
  py.start("/usr/bin/python3", {"-c", "import numpy as n,sys; a=n.load(sys.argv[1]); print(a.dtype, a.shape, a[0].tolist(), a[1][0], n.isnan(a[1][1]))",
                                dir.filePath("map.npy")});
  ASSERT_TRUE(py.waitForFinished(30000));
  EXPECT_EQ(QString::fromUtf8(py.readAllStandardOutput()).trimmed(), "float32 (2, 3) [-0.5, 0.0, 1.0] 0.25 True") << py.readAllStandardError().toStdString();
}

// Issue #19: zooming had no way back; now the map fits again, or zooms to the selected query.
TEST(HeatmapViewTest, ZoomsToAQueryRowAndBackToTheWholeMap) {
  HeatmapView v;
  v.resize(500, 400);
  HeatmapData d;
  d.rows = d.cols = 100;
  d.values.assign(100 * 100, 0.01f);
  v.setData(d);
  v.zoomToRow(60, 5);
  EXPECT_DOUBLE_EQ(v.plot()->yAxis->range().lower, 54.5);
  EXPECT_DOUBLE_EQ(v.plot()->yAxis->range().upper, 65.5);
  EXPECT_DOUBLE_EQ(v.plot()->xAxis->range().upper, 60.5) << "keys up to the query's own position";
  v.resetZoom();
  EXPECT_DOUBLE_EQ(v.plot()->yAxis->range().lower, -0.5);
  EXPECT_DOUBLE_EQ(v.plot()->yAxis->range().upper, 99.5);
  EXPECT_DOUBLE_EQ(v.plot()->xAxis->range().upper, 99.5);
}

TEST(HeatmapViewTest, AnEmptyViewSaysSoInsteadOfDrawingAnEmptyMap) {
  HeatmapView v;
  auto hint = [&]() -> QCPItemText* {
    for (int i = 0; i < v.plot()->itemCount(); ++i)
      if (auto* t = qobject_cast<QCPItemText*>(v.plot()->item(i))) return t;
    return nullptr;
  };
  ASSERT_NE(hint(), nullptr);
  EXPECT_TRUE(hint()->visible());
  EXPECT_FALSE(v.plot()->xAxis->visible());
  v.setData(triangle());
  EXPECT_FALSE(hint()->visible());
  EXPECT_TRUE(v.plot()->xAxis->visible());
  v.setData(HeatmapData{});
  EXPECT_TRUE(hint()->visible());
}

// A real LLaVA prompt has 576 image positions: labels must not pile up, and zooming in must bring
// every label back.
TEST(HeatmapViewTest, LabelsAsManyTokensAsFitAndAllWhenZoomedIn) {
  HeatmapData d;
  d.rows = d.cols = 600;
  d.values.assign(600 * 600, 0.5f);
  for (int i = 0; i < 600; ++i) d.rowLabels << QString("t%1").arg(i);
  d.colLabels = d.rowLabels;
  HeatmapView v;
  v.resize(700, 500);
  v.show();
  v.setData(d);
  v.plot()->replot();
  v.plot()->replot();  // ticks are made before the layout; the second pass sees the final axis rect
  QCPAxis* y = v.plot()->yAxis;
  const QVector<double> ticks = y->tickVector();
  const double minSpacing = QFontMetrics(y->tickLabelFont()).height();
  ASSERT_GE(ticks.size(), 3);
  EXPECT_LT(ticks.size(), 60);
  for (int i = 1; i < ticks.size(); ++i)
    EXPECT_GE(std::abs(y->coordToPixel(ticks[i]) - y->coordToPixel(ticks[i - 1])), minSpacing) << i;
  const QVector<QString> labels = y->tickVectorLabels();
  EXPECT_EQ(labels[1], QString("t%1").arg(static_cast<int>(ticks[1])));
  QCPAxis* x = v.plot()->xAxis;
  EXPECT_LT(x->tickVector().size(), 100);

  y->setRange(99.5, 109.5);  // ten rows in view
  v.plot()->replot();
  EXPECT_EQ(y->tickVector().size(), 10);
  EXPECT_EQ(y->tickVectorLabels().front(), "t100");
}

}  // namespace headlab::views
