// Probe panel: the probes the registry offers with their parameters (as JSON, defaults filled in),
// Run / Cancel, a progress bar with the stage, and the result as a sortable head table that copies
// to the clipboard as TSV. Emits intents; the owner runs the probe.
#pragma once
#include <QWidget>
#include <vector>

#include "headlab/views/view_data.h"

class QComboBox;
class QLabel;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QTableWidget;
class QCustomPlot;

namespace headlab::views {

struct ProbeInfo {
  QString name;
  QString description;
  QString defaultParams;  // JSON object text
};

class ProbePanel : public QWidget {
  Q_OBJECT
 public:
  explicit ProbePanel(QWidget* parent = nullptr);
  void setProbes(const std::vector<ProbeInfo>& probes);
  void selectProbe(const QString& name);
  QString currentProbe() const;
  QString paramsText() const;
  void setParamsText(const QString& json);
  void setRunning(bool running);
  void setProgress(double fraction, const QString& stage);
  void setResult(const HeadScores& scores, const QString& summary);
  QString tableAsTsv() const;
  // Where probes that read prompts take them: the window's prompt (default) or the probe's own
  // built-in prompt set (an explicit choice).
  bool onWindowPrompt() const;
  void setOnWindowPrompt(bool on);
  // Marks the shown result as computed on another prompt, image or model (empty reason: current).
  void setStale(const QString& reason);
  bool stale() const { return !m_staleReason.isEmpty(); }
  // A per-probe curve under the table (Sink_k over key positions, NIAH accuracy over depth, ...);
  // empty xs hides it.
  void setCurve(const QString& title, const std::vector<double>& xs, const std::vector<double>& ys, const QString& xLabel,
                const QString& yLabel);
  QCustomPlot* curvePlot() const { return m_plot; }
  bool running() const { return m_running; }
  QPushButton* runButton() const { return m_run; }
  QPushButton* cancelButton() const { return m_cancel; }
  QTableWidget* table() const { return m_table; }

 signals:
  void runRequested(const QString& probe, const QString& paramsJson);
  void cancelRequested();
  // A row of the results table was clicked: select that head everywhere.
  void headSelected(int layer, int head);

 private:
  void setStage(const QString& stage);
  void setUpPromptSource();
  void setUpCurveMenu();
  std::vector<ProbeInfo> m_probes;
  QComboBox* m_combo;
  QLabel* m_description;
  QPlainTextEdit* m_params;
  QPushButton* m_run;
  QPushButton* m_cancel;
  QPushButton* m_copy;
  QProgressBar* m_bar;
  QLabel* m_stage;
  QLabel* m_summary;
  QComboBox* m_source;
  QString m_summaryText, m_staleReason;
  QTableWidget* m_table;
  QCustomPlot* m_plot;
  bool m_running = false;
};

}  // namespace headlab::views
