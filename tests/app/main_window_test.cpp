#include <gtest/gtest.h>

#include <QAction>
#include <QCoreApplication>
#include <QDockWidget>
#include <QLabel>
#include <QDoubleSpinBox>
#include <QSlider>
#include <QTest>

#include "main_window.h"

namespace headlab::app {

TEST(MainWindowTest, OpensWithEveryDock) {
  MainWindow w;
  w.show();
  ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
  for (const char* name : {"modelDock", "promptDock", "headGridDock", "logitsDock", "probeDock", "patchingDock"}) {
    QDockWidget* d = w.dock(name);
    ASSERT_NE(d, nullptr) << name;
    EXPECT_TRUE(d->isVisible()) << name;
  }
  EXPECT_NE(w.heatmap(), nullptr);
}

TEST(MainWindowTest, StatusBarShowsTheBlasCheckWithoutBlockingTheGuiThread) {
  MainWindow w;
  w.show();
  // The check runs on a pool thread; the event loop keeps turning while it does.
  EXPECT_TRUE(QTest::qWaitFor([&] { return w.runtimeLabel()->text().contains("GFLOP/s"); }, 20000))
      << w.runtimeLabel()->text().toStdString();
  EXPECT_TRUE(w.runtimeLabel()->text().contains("threads"));
}

// Issue #19: at 1280x760 the attention map had 40 px. Now the docks take what they need and the map
// most of the height; View > Reset layout brings back a closed dock and the same proportions.
TEST(MainWindowTest, TheAttentionMapGetsTheRoomAt1280x760AndResetLayoutRestoresIt) {
  MainWindow w;
  w.resize(1280, 760);
  w.show();
  ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
  w.resetLayout();
  QTest::qWait(50);
  QWidget* map = w.findChild<QWidget*>("attentionMap");
  ASSERT_NE(map, nullptr);
  EXPECT_GE(map->height(), 760 * 3 / 10) << "the selected head's map gets most of the centre";
  EXPECT_GE(map->width(), 1280 / 2);
  const int before = map->height();
  w.dock("probeDock")->close();
  w.dock("promptDock")->setFloating(true);
  QAction* reset = w.findChild<QAction*>("resetLayoutAction");
  ASSERT_NE(reset, nullptr);
  reset->trigger();
  QTest::qWait(50);
  EXPECT_TRUE(w.dock("probeDock")->isVisible());
  EXPECT_FALSE(w.dock("promptDock")->isFloating());
  EXPECT_NEAR(map->height(), before, 4);
}

// The α slider says its value in a number box, and a typed value moves the slider (issue #19: no
// readout, then a read-only one); input outside [0, 4] is refused by the box.
TEST(MainWindowTest, TheAlphaSliderHasANumberBox) {
  MainWindow w;
  auto* slider = w.findChild<QSlider*>("alphaSlider");
  auto* value = w.findChild<QDoubleSpinBox*>("alphaValue");
  ASSERT_TRUE(slider && value);
  EXPECT_EQ(value->text(), "1.00");
  slider->setValue(250);
  EXPECT_EQ(value->text(), "2.50");
  value->setValue(0.35);
  EXPECT_EQ(slider->value(), 35);
  value->setValue(9.0);
  EXPECT_EQ(value->value(), 4.0);
  EXPECT_EQ(slider->value(), 400);
}

}  // namespace headlab::app
