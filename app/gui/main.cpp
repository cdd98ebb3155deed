#include <QApplication>
#include <QCommandLineParser>
#include <QFile>
#include <QTimer>
#include <cstdio>

#include "headlab/core/startup.h"
#include "headlab/views/head_grid_model.h"
#include "headlab/views/patching_panel.h"
#include "headlab/views/probe_panel.h"
#include <QDockWidget>
#include <QStatusBar>

#include "headlab/views/image_attention_view.h"
#include "main_window.h"
#include "script_runner.h"
#include "session_controller.h"

namespace {
// Scripted set-up for screenshots and demos, applied once the first prompt has run: ablations
// ("4.1,3.0"), a selected head ("4.1"), a patching sweep ("clean|corrupted|answer|wrong|sweep") and a probe.
void scheduleScriptedSetup(headlab::app::MainWindow& window, const QString& ablations, const QString& selection, const QString& probeName,
                           const QString& patch) {
  const QStringList patchSpec = patch.split('|');
  auto* once = new QMetaObject::Connection;
  *once = QObject::connect(window.session(), &headlab::app::SessionController::promptReady, &window, [&window, ablations, selection, probeName, patchSpec, once] {
    QObject::disconnect(*once);
    delete once;
    for (const QString& spec : ablations.split(',', Qt::SkipEmptyParts))
      window.ablateHead(spec.section('.', 0, 0).toInt(), spec.section('.', 1, 1).toInt());
    if (!selection.isEmpty()) window.selectHead(selection.section('.', 0, 0).toInt(), selection.section('.', 1, 1).toInt());
    if (patchSpec.size() == 5) {
      window.findChild<QDockWidget*>("patchingDock")->raise();
      window.patchingPanel()->setRequest({patchSpec[0], patchSpec[1], patchSpec[2], patchSpec[3], patchSpec[4], "exact"});
      emit window.patchingPanel()->runRequested(window.patchingPanel()->request());
    }
    if (!probeName.isEmpty()) {
      window.runProbeOnPrompt(probeName);  // probes that take a prompt run on the window's prompt
    }
  });
}

// Taken 4 s after start, or with a probe once it has finished (at most 120 s): what the window
// shows is also printed, so that scripts can check the picture's content.
void scheduleScreenshot(headlab::app::MainWindow& window, const QString& path, bool waitForProbe, bool modelGiven) {
  auto shoot = [&window, path] {
    static bool taken = false;
    if (taken) return;
    taken = true;
    const bool ok = window.grab().save(path);
    std::fprintf(stderr, ok ? "screenshot: %s\n" : "error: cannot write screenshot %s\n", qPrintable(path));
    std::fprintf(stderr, "shown: head grid coloured by '%s'; image overlay %s; status '%s'\n", qPrintable(window.headGrid()->scores().name),
                 window.imageView()->hasOverlay() ? qPrintable("'" + window.imageView()->attention().caption + "'") : "none",
                 qPrintable(window.statusBar()->currentMessage()));
    QApplication::exit(ok ? 0 : 1);
  };
  if (waitForProbe) {
    QObject::connect(window.session(), &headlab::app::SessionController::probeFinished, &window,
                     [&window, shoot] { QTimer::singleShot(500, &window, shoot); });
    QObject::connect(window.session(), &headlab::app::SessionController::failed, &window,
                     [&window, shoot] { QTimer::singleShot(500, &window, shoot); });
    QTimer::singleShot(120000, &window, shoot);
  } else {
    QTimer::singleShot(modelGiven ? 4000 : 1500, &window, shoot);
  }
}
}  // namespace

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
  QCommandLineOption image("image", "Image for a vision-language model (LLaVA folder, demo-vlm).", "F");
  QCommandLineOption screenshot("screenshot", "Save a screenshot of the window to F and quit.", "F");
  QCommandLineOption ablate("ablate", "Ablate heads once the prompt has run, e.g. 4.1,3.0 (layer.head).", "L.H,...");
  QCommandLineOption select("select", "Select a head once the prompt has run, e.g. 4.1.", "L.H");
  QCommandLineOption probe("probe", "Run a probe (default parameters) once the prompt has run.", "P");
  QCommandLineOption patch("patch", "Run a patching sweep once the prompt has run: clean|corrupted|answer|wrong|sweep.", "SPEC");
  QCommandLineOption device("device", "Where models run: cpu (default) or cuda[:n].", "D", "cpu");
  QCommandLineOption dtype("dtype", "The decoder's dtype: float32 (default), bfloat16 or float16.", "T", "float32");
  QCommandLineOption size("size", "Window size, e.g. 1280x760 (the default is the last session's, else 1400x900).", "WxH");
  QCommandLineOption script("script", "Run the steps of F (see app/gui/script_runner.h) and quit: exit status 0 when every step passed.", "F");
  parser.addOptions({model, prompt, image, screenshot, ablate, select, probe, patch, device, dtype, size, script});
  parser.process(app);

  headlab::app::MainWindow window;
  window.session()->setDevice(parser.value(device), parser.value(dtype));
  if (parser.isSet(size)) {
    const QStringList wh = parser.value(size).split('x');
    const int w = wh.size() == 2 ? wh[0].toInt() : 0, h = wh.size() == 2 ? wh[1].toInt() : 0;
    if (w < 400 || h < 300) {
      std::fprintf(stderr, "error: --size %s: expected WIDTHxHEIGHT, at least 400x300\n", qPrintable(parser.value(size)));
      return 2;
    }
    window.resize(w, h);
  }
  window.show();
  if (parser.isSet(script)) {
    QFile f(parser.value(script));
    if (!f.open(QIODevice::ReadOnly)) {
      std::fprintf(stderr, "error: --script %s: cannot read it\n", qPrintable(parser.value(script)));
      return 2;
    }
    auto* runner = new headlab::app::ScriptRunner(window, QString::fromUtf8(f.readAll()).split('\n'));
    QObject::connect(runner, &headlab::app::ScriptRunner::finished, &app, [](bool ok) { QApplication::exit(ok ? 0 : 1); });
    runner->start();
  }
  if (parser.isSet(model)) {
    QString p = parser.value(prompt);
    if (p.isEmpty() && parser.value(model).startsWith("demo"))  // the demos open on their first example
      p = headlab::app::MainWindow::examplePrompts(parser.value(model), false).value(0);
    window.openModel(parser.value(model), p, parser.value(image));
  }
  if (parser.isSet(ablate) || parser.isSet(select) || parser.isSet(probe) || parser.isSet(patch))
    scheduleScriptedSetup(window, parser.value(ablate), parser.value(select), parser.value(probe), parser.value(patch));
  if (parser.isSet(screenshot)) scheduleScreenshot(window, parser.value(screenshot), parser.isSet(probe), parser.isSet(model));
  return app.exec();
}
