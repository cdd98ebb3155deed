// The HeadLab window: assembly of docks and views only. Work happens in the session
// controller's worker thread; this class never touches torch.
#pragma once
#include <QMainWindow>

class QDockWidget;
class QLabel;
class QTableView;
class QPlainTextEdit;

namespace headlab::views {
class HeadGridModel;
class HeatmapView;
}

namespace headlab::app {

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);

  QDockWidget* dock(const QString& objectName) const;
  views::HeatmapView* heatmap() const { return m_heatmap; }
  views::HeadGridModel* headGrid() const { return m_gridModel; }
  QLabel* runtimeLabel() const { return m_runtime; }

 private:
  QDockWidget* addDock(const QString& objectName, const QString& title, QWidget* content, Qt::DockWidgetArea area);
  void startRuntimeCheck();

  views::HeatmapView* m_heatmap = nullptr;
  views::HeadGridModel* m_gridModel = nullptr;
  QTableView* m_gridView = nullptr;
  QLabel* m_runtime = nullptr;
};

}  // namespace headlab::app
