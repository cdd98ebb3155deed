#include <gtest/gtest.h>

#include <QTableWidget>

#include "headlab/views/logits_panel.h"

namespace headlab::views {

// Issue #19: on GPT-2 every Δ read +0.0000. Small probabilities and changes keep their digits
// (e-notation below 1e-3), the exact value is in the tooltip, and the colour says the sign.
TEST(LogitsPanelTest, SmallChangesAreShownNotRoundedToZero) {
  LogitsPanel panel;
  panel.setPredictions({{1, " the", 0.5f, 0.5f}, {2, " a", 0.25f, 0.25f + 3.2e-6f}, {3, " of", 4e-5f, 2e-5f}}, {});
  QTableWidget* t = panel.table();
  EXPECT_EQ(t->item(0, 3)->text(), "±0");
  EXPECT_EQ(t->item(1, 3)->text(), "+3.2e-06");
  EXPECT_EQ(t->item(2, 1)->text(), "4.0e-05");
  EXPECT_EQ(t->item(2, 3)->text(), "-2.0e-05");
  EXPECT_EQ(t->item(0, 1)->text(), "0.5000");
  EXPECT_NE(t->item(1, 3)->foreground().color(), t->item(0, 3)->foreground().color()) << "a change is coloured";
}

}  // namespace headlab::views
