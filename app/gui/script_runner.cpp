#include "script_runner.h"

#include <QDateTime>
#include <QDockWidget>
#include <QFile>
#include <QLabel>
#include <QTimer>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include "headlab/views/head_grid_model.h"
#include "headlab/views/heatmap_view.h"
#include "headlab/views/image_attention_view.h"
#include "headlab/views/logits_panel.h"
#include "headlab/views/patching_panel.h"
#include "main_window.h"
#include "session_controller.h"

namespace headlab::app {

namespace {
// "4.1" -> {4, 1}; throws the reason for anything else.
std::pair<int, int> layerHead(const QString& text) {
  bool okL = false, okH = false;
  const int l = text.section('.', 0, 0).toInt(&okL), h = text.section('.', 1, 1).toInt(&okH);
  if (!okL || !okH || text.count('.') != 1) throw QString("'%1' is not LAYER.HEAD").arg(text);
  return {l, h};
}

QString headName(int l, int h) { return QString("L%1H%2").arg(l).arg(h); }
}  // namespace

ScriptRunner::ScriptRunner(MainWindow& window, QStringList lines, int stepTimeoutMs)
    : QObject(&window), m_window(window), m_lines(std::move(lines)), m_timeoutMs(stepTimeoutMs) {
  SessionController* s = window.session();
  connect(s, &SessionController::predictionsReady, this, [this] { ++m_predictions; });
  connect(s, &SessionController::probeFinished, this, [this] { ++m_probes; });
  connect(s, &SessionController::patchingFinished, this, [this] { ++m_patches; });
  connect(s, &SessionController::modelOpened, this, [this] { ++m_opened; });
  connect(s, &SessionController::lensReady, this, [this] { ++m_lenses; });
  connect(s, &SessionController::dlaReady, this, [this] { ++m_dlas; });
  connect(s, &SessionController::failed, this, [this](const QString& msg) { m_failure = msg; });
}

void ScriptRunner::start() { QTimer::singleShot(0, this, &ScriptRunner::next); }

void ScriptRunner::fail(const QString& why) {
  m_done = true;
  const QString msg = QString("walkthrough: step %1 '%2' failed: %3").arg(m_index + 1).arg(m_lines.value(m_index), why);
  std::fprintf(stderr, "%s\n", qPrintable(msg));
  emit finished(false, msg);
}

void ScriptRunner::next() {
  while (++m_index < m_lines.size()) {
    const QString line = m_lines[m_index].trimmed();
    if (line.isEmpty() || line.startsWith('#')) continue;
    m_failure.clear();
    m_started = QDateTime::currentMSecsSinceEpoch();
    try {
      m_step = begin(line.section(' ', 0, 0), line.section(' ', 1).trimmed());
    } catch (const QString& why) {
      return fail(why);
    }
    return poll();
  }
  m_done = true;
  std::fprintf(stderr, "walkthrough: all steps passed\n");
  emit finished(true, {});
}

void ScriptRunner::poll() {
  if (m_done) return;
  if (!m_failure.isEmpty()) return fail(m_failure);
  QString result;
  try {
    result = m_step.done();
  } catch (const QString& why) {
    return fail(why);
  }
  if (!result.isEmpty()) {
    std::fprintf(stderr, "walkthrough: [%d] %s: %s\n", m_index + 1, qPrintable(m_lines[m_index].trimmed()), qPrintable(result));
    return next();
  }
  if (QDateTime::currentMSecsSinceEpoch() - m_started > m_timeoutMs) return fail(QString("no result after %1 s").arg(m_timeoutMs / 1000));
  QTimer::singleShot(50, this, &ScriptRunner::poll);
}

// Steps that act on the model or the window and wait for the worker's answer (nullopt: not one of them).
std::optional<ScriptRunner::Step> ScriptRunner::beginAction(const QString& command, const QString& arg) {
  MainWindow& w = m_window;
  const int predictions = m_predictions, probes = m_probes, patches = m_patches, opened = m_opened;
  auto afterPrediction = [this, predictions](QString text) {
    return [this, predictions, text] { return m_predictions > predictions ? text : QString(); };
  };
  if (command == "open") {
    w.openModel(arg);
    return Step{[this, opened, &w] { return m_opened > opened ? QString("ok (%1 examples)").arg(w.currentExamplePrompts().size()) : QString(); }};
  }
  if (command == "example" || command == "prompt") {
    QString text = arg;
    if (command == "example") {
      const int n = arg.toInt();
      if (n < 1 || n > w.currentExamplePrompts().size()) throw QString("no example %1 (the model has %2)").arg(arg).arg(w.currentExamplePrompts().size());
      text = w.currentExamplePrompts()[n - 1];
    }
    w.runPrompt(text);
    return Step{afterPrediction("ok: '" + text + "'")};
  }
  if (command == "probe") {
    w.runProbeOnPrompt(arg);
    return Step{[this, probes] { return m_probes > probes ? QString("ok") : QString(); }};
  }
  if (command == "select") {
    int l = 0, h = 0;
    if (arg == "best") {
      float best = -INFINITY;
      const auto& s = w.headGrid()->scores();
      for (int i = 0; i < s.layers * s.heads; ++i)
        if (std::isfinite(s.values[i]) && s.values[i] > best) best = s.values[i], l = i / s.heads, h = i % s.heads;
      if (!std::isfinite(best)) throw QString("the head grid has no scores");
    } else {
      std::tie(l, h) = layerHead(arg);
    }
    w.selectHead(l, h);
    if (w.currentLayer() != l || w.currentHead() != h) throw QString("%1 is not a head of this model").arg(headName(l, h));
    // Done when the attention map shows the head (another layer's patterns arrive from the worker).
    return Step{[&w, l, h, name = headName(l, h), score = w.headGrid()->scores()] {
      if (!w.heatmap()->data().title.startsWith(QString("L%1 H%2").arg(l).arg(h))) return QString();
      return "ok: " + name + (score.name.isEmpty() ? "" : " (" + score.name + ")");
    }};
  }
  if (command == "ablate") {
    const auto [l, h] = arg.isEmpty() ? std::pair{w.currentLayer(), w.currentHead()} : layerHead(arg);
    if (!w.ablateHead(l, h)) throw QString("cannot edit %1").arg(headName(l, h));
    return Step{afterPrediction("ok: " + headName(l, h) + " " + views::ablationName(w.headGrid()->state(l, h).ablation))};
  }
  if (command == "lens" || command == "dla") {
    const int before = command == "lens" ? m_lenses : m_dlas;
    if (command == "lens") w.session()->runLens();
    else w.session()->runDla();
    const bool lens = command == "lens";
    return Step{[this, before, lens, &w] {
      if ((lens ? m_lenses : m_dlas) == before) return QString();
      return "ok: " + w.lensSummary()->text().section(';', 0, 0);
    }};
  }
  if (command == "patch") {
    const QStringList spec = arg.split('|');
    if (spec.size() != 5) throw QString("expected clean|corrupted|answer|wrong|sweep");
    w.dock("patchingDock")->raise();
    w.patchingPanel()->setRequest({spec[0], spec[1], spec[2], spec[3], spec[4], "exact"});
    emit w.patchingPanel()->runRequested(w.patchingPanel()->request());
    return Step{[this, patches] { return m_patches > patches ? QString("ok") : QString(); }};
  }
  return std::nullopt;
}

// Steps that check what the window shows.
std::optional<ScriptRunner::Step> ScriptRunner::beginCheck(const QString& command, const QString& arg) {
  MainWindow& w = m_window;
  if (command == "expect-fall") {
    return Step{[&w]() -> QString {
      const auto& top = w.logits()->predictions();
      if (top.empty()) throw QString("no predictions shown");
      const views::TokenProb* first = &top[0];
      for (const auto& t : top)
        if (t.baseline > first->baseline) first = &t;
      const QString text = QString("'%1' %2 -> %3").arg(first->text).arg(first->baseline, 0, 'f', 3).arg(first->intervened, 0, 'f', 3);
      if (!(first->intervened < 0.5f * first->baseline)) throw QString("the prediction did not fall: ") + text;
      return "ok: " + text;
    }};
  }
  if (command == "expect-top") {
    return Step{[&w, arg]() -> QString {
      const auto& top = w.logits()->predictions();
      if (top.empty()) throw QString("no predictions shown");
      if (top[0].text.trimmed() != arg) throw QString("the top token is '%1' (%2), not '%3'").arg(top[0].text).arg(top[0].intervened, 0, 'f', 3).arg(arg);
      return QString("ok: '%1' %2").arg(top[0].text).arg(top[0].intervened, 0, 'f', 3);
    }};
  }
  if (command == "expect-image") {
    return Step{[&w]() -> QString {
      if (w.imageView()->attention().empty()) throw QString("the Image dock holds no image");
      return QString("ok: %1x%2 image").arg(w.imageView()->attention().image.width()).arg(w.imageView()->attention().image.height());
    }};
  }
  return std::nullopt;
}

// Steps that write or read files.
std::optional<ScriptRunner::Step> ScriptRunner::beginFile(const QString& command, const QString& arg) {
  MainWindow& w = m_window;
  const int predictions = m_predictions;
  if (command == "export-patching") {
    if (w.patchingPanel()->heatmap()->data().empty()) throw QString("no patching result to export");
    if (!w.patchingPanel()->heatmap()->exportTo(arg, 1000, 700)) throw QString("cannot write %1").arg(arg);
    return Step{[] { return QString("ok"); }};
  }
  if (command == "save-session") {
    if (!w.saveSession(arg)) throw QString("cannot write %1").arg(arg);
    return Step{[] { return QString("ok"); }};
  }
  if (command == "open-session") {
    QFile f(arg);
    if (!f.open(QIODevice::ReadOnly)) throw QString("cannot read %1").arg(arg);
    const QString saved = QString::fromUtf8(f.readAll());
    w.openSession(arg);
    // Done when the window shows the session and the worker has been idle for two polls in a row
    // (the predictions of the restored edits, queued before it went idle, have arrived by then).
    auto settled = std::make_shared<bool>(false);
    return Step{[this, &w, saved, predictions, settled] {
      const bool now = m_predictions > predictions && w.session()->idle() && w.sessionJson() == saved;
      const bool done = now && *settled;
      *settled = now;
      return done ? QString("ok: the window shows the saved session") : QString();
    }};
  }
  if (command == "screenshot") {
    if (!w.grab().save(arg)) throw QString("cannot write %1").arg(arg);
    return Step{[] { return QString("ok"); }};
  }
  return std::nullopt;
}

ScriptRunner::Step ScriptRunner::begin(const QString& command, const QString& arg) {
  if (auto step = beginAction(command, arg)) return *step;
  if (auto step = beginCheck(command, arg)) return *step;
  if (auto step = beginFile(command, arg)) return *step;
  throw QString("unknown step '%1'").arg(command);
}

}  // namespace headlab::app
