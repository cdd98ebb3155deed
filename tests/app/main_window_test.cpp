#include <gtest/gtest.h>

#include <QDockWidget>
#include <QLabel>
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

}  // namespace headlab::app
