// GoogleTest main for tests that need a QApplication (offscreen platform by default).
#include <gtest/gtest.h>

#include <QApplication>
#include <QStandardPaths>

int main(int argc, char** argv) {
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  QStandardPaths::setTestModeEnabled(true);  // QSettings of tests never touch the user's
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
