// File ▸ Export HDF5 trace as one dialog: the file, the hook globs with a live "matches N hook
// points" (the model's hook names, matched as the core matches them: '*' any run, '?' one
// character, globs comma-separated) and the size estimate the session computes for the prompt.
#pragma once
#include <QDialog>
#include <QStringList>

class QLabel;
class QLineEdit;
class QPushButton;
class QTimer;

namespace headlab::app {

class SessionController;

class TraceExportDialog : public QDialog {
  Q_OBJECT
 public:
  TraceExportDialog(SessionController* session, QStringList hookNames, QWidget* parent = nullptr);
  QString path() const;
  QString hooks() const;
  void setPath(const QString& path);
  void setHooks(const QString& globs);
  // The hook names the globs match, in forward order.
  QStringList matches() const;
  QLabel* matchLabel() const { return m_matches; }
  QLabel* estimateLabel() const { return m_estimate; }
  QPushButton* exportButton() const { return m_ok; }

 private:
  void refresh();
  SessionController* m_session;
  QStringList m_hookNames;
  QLineEdit* m_path;
  QLineEdit* m_hooks;
  QLabel* m_matches;
  QLabel* m_estimate;
  QPushButton* m_ok;
  QTimer* m_estimateDelay;
};

}  // namespace headlab::app
