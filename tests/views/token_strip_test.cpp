#include <gtest/gtest.h>

#include <QSignalSpy>
#include <QTest>

#include "headlab/views/token_strip.h"

namespace headlab::views {

namespace {
// "<s> img 0 … img 99 what ?": 100 image positions at 1..100.
QStringList prompt() {
  QStringList p{"<s>"};
  for (int i = 0; i < 100; ++i) p << QString("img %1").arg(i);
  p << " what" << " ?";
  return p;
}
}  // namespace

TEST(TokenStripTest, ALongImageSpanFoldsIntoOneChipThatStandsForItsPositions) {
  TokenStrip strip;
  QSignalSpy selected(&strip, &TokenStrip::positionSelected);
  strip.setTokens(prompt(), {});
  strip.setFoldableSpan(1, 101, "image 10×10");
  ASSERT_TRUE(strip.spanFolded());
  ASSERT_EQ(strip.count(), 4);  // <s>, the image chip, what, ?
  EXPECT_EQ(strip.item(1)->text(), "image 10×10");
  EXPECT_EQ(strip.item(2)->text(), "·what");

  strip.setCurrentRow(3);  // a click on '?'
  EXPECT_EQ(selected.takeLast().at(0).toInt(), 102);
  EXPECT_EQ(strip.selectedPosition(), 102);
  strip.setCurrentRow(1);  // a click on the image chip: its last position
  EXPECT_EQ(selected.takeLast().at(0).toInt(), 100);

  strip.selectPosition(37);  // from the heatmap: a query inside the image
  EXPECT_EQ(strip.currentRow(), 1);
  EXPECT_EQ(strip.selectedPosition(), 37);
  EXPECT_EQ(selected.takeLast().at(0).toInt(), 37);

  strip.setSpanFolded(false);  // unfolded, the same position stays selected
  EXPECT_EQ(strip.count(), 103);
  EXPECT_EQ(strip.currentRow(), 37);
  EXPECT_EQ(strip.selectedPosition(), 37);
}

TEST(TokenStripTest, ShortSpansStayUnfoldedAndANewPromptKeepsTheSpanUntilReplaced) {
  TokenStrip strip;
  strip.setTokens(prompt(), {});
  strip.setFoldableSpan(1, 17, "image 4×4");  // demo-vlm's 16 patches: every chip shown
  EXPECT_FALSE(strip.spanFolded());
  EXPECT_EQ(strip.count(), 103);
  strip.setFoldableSpan(1, 101, "image 10×10");
  strip.setTokens(prompt(), {});
  EXPECT_TRUE(strip.spanFolded());
  EXPECT_EQ(strip.selectedPosition(), -1);
  strip.setTokens({"<s>", " hi"}, {});  // the span no longer fits: nothing folds
  EXPECT_FALSE(strip.spanFolded());
  EXPECT_EQ(strip.count(), 2);
  strip.setFoldableSpan(-1, -1, QString());
  EXPECT_FALSE(strip.spanFolded());
}

// Shift-click selects a span of chips (PASTA's emphasised tokens) and the chip clicked last is the
// query; a selected folded image chip stands for every position of the image.
TEST(TokenStripTest, ShiftClickSelectsASpanAndTheFoldedChipStandsForTheWholeImage) {
  TokenStrip strip;
  strip.resize(900, 300);
  strip.show();
  ASSERT_TRUE(QTest::qWaitForWindowExposed(&strip));
  strip.setTokens(prompt(), {});
  strip.setFoldableSpan(1, 101, "image 10×10");
  QSignalSpy span(&strip, &TokenStrip::selectionSpanChanged);
  auto click = [&](int row, Qt::KeyboardModifiers mods) {
    QTest::mouseClick(strip.viewport(), Qt::LeftButton, mods, strip.visualItemRect(strip.item(row)).center());
  };
  click(2, {});
  EXPECT_EQ(strip.selectedPositions(), (QVector<int>{101}));
  click(3, Qt::ShiftModifier);
  EXPECT_EQ(strip.selectedPositions(), (QVector<int>{101, 102}));
  EXPECT_EQ(strip.selectedPosition(), 102) << "the last click is the query";
  ASSERT_FALSE(span.isEmpty());
  EXPECT_EQ(span.last().at(0).value<QVector<int>>(), (QVector<int>{101, 102}));
  click(1, Qt::ControlModifier);
  QVector<int> expected;
  for (int p = 1; p <= 102; ++p) expected << p;
  EXPECT_EQ(strip.selectedPositions(), expected);
  click(0, {});
  EXPECT_EQ(strip.selectedPositions(), (QVector<int>{0})) << "a plain click starts again";
}

}  // namespace headlab::views
