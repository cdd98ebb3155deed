// The head grid without torch: rows, columns, colours and emitted intents.
#include <gtest/gtest.h>

#include <QFont>
#include <QSignalSpy>
#include <cmath>

#include "headlab/views/head_grid_model.h"

namespace headlab::views {

TEST(HeadGridModelTest, HasLayersAsRowsAndHeadsAsColumns) {
  HeadGridModel m;
  m.setShape(5, 8);
  EXPECT_EQ(m.rowCount(), 5);
  EXPECT_EQ(m.columnCount(), 8);
  EXPECT_EQ(m.headerData(2, Qt::Vertical, Qt::DisplayRole).toString(), "L2");
  EXPECT_EQ(m.headerData(7, Qt::Horizontal, Qt::DisplayRole).toString(), "H7");
  // 12 heads (GPT-2 small): bare numbers fit a narrow dock (issue #19: H10/H11 were cut); tooltips say what they are.
  m.setShape(12, 12);
  EXPECT_EQ(m.headerData(11, Qt::Horizontal, Qt::DisplayRole).toString(), "11");
  EXPECT_EQ(m.headerData(11, Qt::Horizontal, Qt::ToolTipRole).toString(), "head 11");
}

TEST(HeadGridModelTest, ColoursFollowTheScoreOnViridis) {
  HeadGridModel m;
  m.setShape(2, 2);
  m.setScores({2, 2, {0.0f, 0.5f, 1.0f, NAN}, "first-token attention", 0});
  EXPECT_EQ(m.data(m.index(0, 0), Qt::BackgroundRole).value<QColor>(), QColor(68, 1, 84));
  EXPECT_EQ(m.data(m.index(1, 0), Qt::BackgroundRole).value<QColor>(), QColor(253, 231, 37));
  EXPECT_EQ(m.data(m.index(0, 1), Qt::BackgroundRole).value<QColor>(), QColor(33, 145, 140));
  EXPECT_EQ(m.data(m.index(1, 1), Qt::BackgroundRole).value<QColor>(), QColor(235, 235, 235)) << "NaN = not computed";
  EXPECT_FLOAT_EQ(m.data(m.index(0, 1), Qt::UserRole).toFloat(), 0.5f);
}

TEST(HeadGridModelTest, ToggleEmitsIntentWithTheToolbarKind) {
  HeadGridModel m;
  m.setShape(3, 4);
  m.setAblationKind(AblationKind::Uniform);
  QSignalSpy spy(&m, &HeadGridModel::headStateChanged);
  m.toggleAblation(2, 3);
  ASSERT_EQ(spy.count(), 1);
  EXPECT_EQ(spy[0][0].toInt(), 2);
  EXPECT_EQ(spy[0][1].toInt(), 3);
  EXPECT_EQ(m.state(2, 3).ablation, AblationKind::Uniform);
  EXPECT_EQ(m.data(m.index(2, 3), Qt::DisplayRole).toString(), "U");
  m.toggleAblation(2, 3);
  EXPECT_EQ(m.state(2, 3).ablation, AblationKind::None);
  m.toggleAblation(9, 0);  // out of range: ignored
  EXPECT_EQ(spy.count(), 2);
}

// PASTA takes the emphasised positions at the time of the toggle; with none there is nothing to steer to.
TEST(HeadGridModelTest, PastaKeepsTheEmphasisOfItsToggleAndRefusesNone) {
  HeadGridModel m;
  m.setShape(2, 3);
  m.setAblationKind(AblationKind::Pasta);
  QSignalSpy spy(&m, &HeadGridModel::headStateChanged);
  EXPECT_FALSE(m.toggleAblation(1, 2));
  EXPECT_EQ(spy.count(), 0);
  EXPECT_EQ(m.state(1, 2).ablation, AblationKind::None);
  m.setEmphasis({9, 3, 4, 5, 4});
  ASSERT_TRUE(m.toggleAblation(1, 2));
  m.setEmphasis({0});
  EXPECT_EQ(m.state(1, 2).ablation, AblationKind::Pasta);
  EXPECT_EQ(m.state(1, 2).keys, (QVector<int>{3, 4, 5, 9})) << "sorted, unique, and kept when the emphasis changes later";
  EXPECT_EQ(m.data(m.index(1, 2), Qt::DisplayRole).toString(), "P");
  EXPECT_TRUE(m.data(m.index(1, 2), Qt::ToolTipRole).toString().contains("emphasised positions 3-5+9"));
  ASSERT_TRUE(m.toggleAblation(1, 2));
  EXPECT_TRUE(m.state(1, 2).keys.isEmpty()) << "removing the edit drops its keys";
}

TEST(HeadGridModelTest, AlphaIsClampedAndResetAllRestores) {
  HeadGridModel m;
  m.setShape(2, 2);
  m.setAlpha(0, 1, 7.0f);
  EXPECT_FLOAT_EQ(m.state(0, 1).alpha, 4.0f);
  EXPECT_EQ(m.data(m.index(0, 1), Qt::DisplayRole).toString(), "×4");
  EXPECT_LT(m.data(m.index(0, 1), Qt::FontRole).value<QFont>().pointSizeF(), QFont().pointSizeF()) << "badges in a smaller font";
  m.toggleAblation(1, 1);
  EXPECT_EQ(m.editedCount(), 2);
  QSignalSpy spy(&m, &HeadGridModel::allReset);
  m.resetAll();
  EXPECT_EQ(spy.count(), 1);
  EXPECT_EQ(m.editedCount(), 0);
}

}  // namespace headlab::views
