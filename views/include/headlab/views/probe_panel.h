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
  bool running() const { return m_running; }
  QPushButton* runButton() const { return m_run; }
  QPushButton* cancelButton() const { return m_cancel; }
  QTableWidget* table() const { return m_table; }

 signals:
  void runRequested(const QString& probe, const QString& paramsJson);
  void cancelRequested();

 private:
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
  QTableWidget* m_table;
  bool m_running = false;
};

}  // namespace headlab::views
