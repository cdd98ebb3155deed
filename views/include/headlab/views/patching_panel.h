// Activation patching from the window: clean and corrupted prompts, answer and wrong tokens, the
// sweep, exact or attribution; the result as a heatmap whose colour scale says 0 = corrupted run,
// 1 = clean run. Emits intents; the owner runs the sweep.
#pragma once
#include <QWidget>

#include "headlab/views/view_data.h"

class QCheckBox;
class QComboBox;
class QFormLayout;
class QLabel;
class QLayout;
class QLineEdit;
class QPushButton;

namespace headlab::views {

class HeatmapView;

struct PatchingRequestView {
  QString clean, corrupted, answer, wrong, sweep, method;  // method: exact, attribution or both
  // Vision-language models: the corrupted run's image file (empty: the window's image); the
  // clean run uses the window's image, and an empty corrupted prompt means the clean one.
  QString corruptedImage;
  bool noising = false;     // patch corrupted activations into the clean run (default: denoising)
  bool applyEdits = false;  // the window's head edits stay installed in every run of the sweep
  QString receiver;         // path patching: the receiver head "L.H"
  QString input = "v";      // path patching: the receiver's q, k or v
};

class PatchingPanel : public QWidget {
  Q_OBJECT
 public:
  explicit PatchingPanel(QWidget* parent = nullptr);
  PatchingRequestView request() const;
  void setRequest(const PatchingRequestView& r);
  void setRunning(bool running);
  bool running() const;  // a sweep was started and has not ended
  // While a sweep runs: its progress in the message line (the Cancel button asks it to stop).
  void setProgress(double fraction, const QString& stage);
  // The sweep kinds offered (the core's layout table), each with a one-line tooltip; keeps the
  // selection when its name is still offered.
  void setSweepKinds(const QStringList& names, const QStringList& summaries);
  void setResult(const HeatmapData& grid, const QString& summary);
  // Method "both": the attribution map beside the exact one (empty: hidden).
  void setComparison(const HeatmapData& attribution);
  HeatmapView* comparison() const { return m_comparison; }
  // The window's prompt, for the "use the window's prompt" button of the clean row.
  void setWindowPrompt(const QString& prompt) { m_windowPrompt = prompt; }
  void setMessage(const QString& text);
  // Marks the shown sweep as computed before a change of model (empty reason: current).
  void setStale(const QString& reason);
  // Shows the corrupted-image row (a vision-language model is open).
  void setImageInputs(bool enabled);
  HeatmapView* heatmap() const { return m_heatmap; }
  QPushButton* runButton() const { return m_run; }
  QPushButton* cancelButton() const { return m_cancel; }

 signals:
  void runRequested(const headlab::views::PatchingRequestView& request);
  void cancelRequested();

 private:
  QLayout* buildOptionsRow();
  QLineEdit *m_clean, *m_corrupted, *m_answer, *m_wrong, *m_corruptedImage;
  QWidget* m_imageRow;
  QFormLayout* m_form = nullptr;
  bool m_imageInputs = false;
  QComboBox *m_sweep, *m_method;
  QPushButton* m_run;
  QPushButton* m_cancel;
  QLabel* m_message;
  QString m_resultText, m_windowPrompt;
  QCheckBox *m_noising, *m_applyEdits;
  QLineEdit* m_receiver;
  QComboBox* m_input;
  QWidget* m_pathRow;
  HeatmapView* m_comparison;
  HeatmapView* m_heatmap;
};

}  // namespace headlab::views
