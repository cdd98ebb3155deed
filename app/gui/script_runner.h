// The window's own scripting (`headlab --script FILE`): one step per line, each run through the
// window's public API as a user's click would, and each waited for before the next one starts. It
// drives scripts/walkthrough.sh (the first five minutes on the demo model) in `make test`.
//
//   open MODEL                 opens a model (demo, demo-vlm, a file or folder); no prompt runs
//   example N                  runs the model's Nth example prompt (the Examples menu, from 1)
//   prompt TEXT                runs TEXT
//   probe NAME                 runs a probe on the window's prompt
//   lens / dla                 the Lens dock's logit lens / direct logit attribution
//   select L.H | select best   selects a head (best: the highest cell of the grid's current colouring)
//   ablate [L.H]               toggles the toolbar's edit on a head (default: the selected one)
//   expect-fall                the baseline's top token must have lost at least half its probability
//   expect-top TOKEN           the most probable next token (after the edits) is TOKEN
//   expect-image               the Image dock holds an image
//   patch C|R|A|W|SWEEP        a patching sweep: clean, corrupted, answer, wrong, sweep kind
//   export-patching FILE       the patching heatmap as PNG/PDF
//   save-session FILE / open-session FILE   (open-session waits until the window shows the session)
//   screenshot FILE
// Lines starting with '#' and empty lines are skipped. Every step prints one line to stderr; the
// first failing step ends the script with its reason.
#pragma once
#include <QObject>
#include <QStringList>
#include <functional>
#include <optional>

namespace headlab::app {

class MainWindow;

class ScriptRunner : public QObject {
  Q_OBJECT
 public:
  ScriptRunner(MainWindow& window, QStringList lines, int stepTimeoutMs = 600000);
  void start();

 signals:
  void finished(bool ok, const QString& message);

 private:
  struct Step {
    std::function<QString()> done;  // polled: "" = not yet, "ok…" = done (the text is printed)
  };
  void next();
  void poll();
  void fail(const QString& why);
  Step begin(const QString& command, const QString& argument);  // throws QString for a bad line
  std::optional<Step> beginAction(const QString& command, const QString& argument);
  std::optional<Step> beginCheck(const QString& command, const QString& argument);
  std::optional<Step> beginFile(const QString& command, const QString& argument);

  MainWindow& m_window;
  QStringList m_lines;
  int m_index = -1;
  int m_timeoutMs;
  qint64 m_started = 0;
  Step m_step;
  int m_predictions = 0, m_probes = 0, m_patches = 0, m_opened = 0, m_lenses = 0, m_dlas = 0;
  QString m_failure;
  bool m_done = false;
};

}  // namespace headlab::app
