#include <QApplication>
#include <QCommandLineParser>
#include <QTimer>
#include <cstdio>

#include "headlab/core/startup.h"
#include "main_window.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setApplicationName("HeadLab");
  QApplication::setOrganizationName("HeadLab");
  QApplication::setApplicationVersion(headlab::appVersion());
  QCommandLineParser parser;
  parser.setApplicationDescription("HeadLab: a workbench for transformer attention heads");
  parser.addHelpOption();
  parser.addVersionOption();
  QCommandLineOption model("model", "Model to open (folder, .gguf, .bin, demo).", "M");
  QCommandLineOption prompt("prompt", "Prompt to run.", "S");
  QCommandLineOption screenshot("screenshot", "Save a screenshot of the window to F and quit.", "F");
  parser.addOptions({model, prompt, screenshot});
  parser.process(app);

  headlab::app::MainWindow window;
  window.show();
  if (parser.isSet(model)) window.openModel(parser.value(model), parser.value(prompt));
  if (parser.isSet(screenshot)) {
    const QString path = parser.value(screenshot);
    QTimer::singleShot(parser.isSet(model) ? 4000 : 1500, &window, [&window, path] {
      bool ok = window.grab().save(path);
      std::fprintf(stderr, ok ? "screenshot: %s\n" : "error: cannot write screenshot %s\n", qPrintable(path));
      QApplication::exit(ok ? 0 : 1);
    });
  }
  return app.exec();
}
