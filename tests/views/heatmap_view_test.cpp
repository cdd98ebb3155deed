#include <gtest/gtest.h>

#include <QDir>
#include <QFile>
#include <QImage>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>

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

}  // namespace headlab::views
