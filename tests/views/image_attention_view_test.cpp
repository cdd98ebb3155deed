// The image overlay without torch: what a patch's pixels look like for a given attention row.
#include <gtest/gtest.h>

#include <QImage>
#include <QTemporaryDir>

#include "headlab/views/image_attention_view.h"

namespace headlab::views {

namespace {
// A pure red 16 x 16 image with a 4 x 4 patch grid; the exported picture's pixel at a patch's centre.
QColor patchCentre(const std::vector<float>& values, int patch) {
  QImage red(16, 16, QImage::Format_RGB32);
  red.fill(Qt::red);
  ImageAttentionView view;
  view.setImage(red);
  view.setAttention({red, 4, values, "caption"});
  QTemporaryDir dir;
  const QString path = dir.filePath("overlay.png");
  EXPECT_TRUE(view.exportTo(path, 400));
  const QImage out(path);
  const int cell = 400 / 4;
  return out.pixelColor((patch % 4) * cell + cell / 2, (patch / 4) * cell + cell / 2);
}
bool grey(const QColor& c) { return std::abs(c.red() - c.green()) <= 2 && std::abs(c.green() - c.blue()) <= 2; }
}  // namespace

// Issue #19: the overlay was scaled to its own maximum and blended with the image's colours, so a head
// with 0.00 of its row on the image painted its strongest patch full yellow (over red: orange, a colour
// the legend does not have). Now the image is grey under the overlay, and the opacity follows the
// share of the row on the image.
TEST(ImageAttentionViewTest, AHeadThatIgnoresTheImagePaintsNothingAndColoursStayOnTheLegend) {
  std::vector<float> ignoring(16, 0.0f);
  ignoring[5] = 1e-4f;  // the row's strongest patch, but the image holds 0.01% of the row
  const QColor faint = patchCentre(ignoring, 5);
  EXPECT_TRUE(grey(faint)) << "no tint when the image holds nothing of the row: " << faint.name().toStdString();

  std::vector<float> looking(16, 0.01f);
  looking[5] = 0.85f;  // the whole row on the image, mostly on patch 5
  const QColor strong = patchCentre(looking, 5);
  EXPECT_FALSE(grey(strong)) << "a patch that holds most of the row is tinted";
  EXPECT_GT(strong.green(), strong.blue() + 60) << "viridis' yellow end over grey: " << strong.name().toStdString();
  const QColor weak = patchCentre(looking, 0);
  EXPECT_LT(weak.green(), strong.green()) << "weaker patches are darker";
}

}  // namespace headlab::views
