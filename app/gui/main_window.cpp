#include "main_window.h"

#include <QDockWidget>
#include <QFutureWatcher>
#include <QHeaderView>
#include <QLabel>
#include <QMenuBar>
#include <QStatusBar>
#include <QTableView>
#include <QVBoxLayout>
#include <QtConcurrent/QtConcurrent>

#include "headlab/core/startup.h"
#include "headlab/views/head_grid_model.h"
#include "headlab/views/heatmap_view.h"

namespace headlab::app {

namespace {
QLabel* emptyState(const QString& text) {
  auto* l = new QLabel(text);
  l->setAlignment(Qt::AlignCenter);
  l->setWordWrap(true);
  l->setStyleSheet("color: #777; padding: 12px;");
  return l;
}
}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(QString("HeadLab %1").arg(appVersion()));
  resize(1400, 900);
  m_heatmap = new views::HeatmapView(this);
  setCentralWidget(m_heatmap);

  addDock("modelDock", tr("Model"), emptyState(tr("No model open.\nFile ▸ Open model, or drop a model folder here.")),
          Qt::LeftDockWidgetArea);
  addDock("promptDock", tr("Prompt"), emptyState(tr("Type a prompt once a model is open.")), Qt::TopDockWidgetArea);

  m_gridModel = new views::HeadGridModel(this);
  m_gridView = new QTableView;
  m_gridView->setModel(m_gridModel);
  m_gridView->horizontalHeader()->setDefaultSectionSize(34);
  m_gridView->verticalHeader()->setDefaultSectionSize(22);
  addDock("headGridDock", tr("Heads"), m_gridView, Qt::RightDockWidgetArea);
  addDock("logitsDock", tr("Logits"), emptyState(tr("Next-token predictions appear here.")), Qt::RightDockWidgetArea);
  addDock("probeDock", tr("Probes"), emptyState(tr("Probes: sinks, retrieval, induction, …")), Qt::BottomDockWidgetArea);

  auto* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);
  auto* viewMenu = menuBar()->addMenu(tr("&View"));
  for (auto* d : findChildren<QDockWidget*>()) viewMenu->addAction(d->toggleViewAction());

  m_runtime = new QLabel(tr("checking BLAS…"));
  statusBar()->addPermanentWidget(m_runtime);
  statusBar()->showMessage(tr("Ready"));
  startRuntimeCheck();
}

QDockWidget* MainWindow::addDock(const QString& objectName, const QString& title, QWidget* content,
                                 Qt::DockWidgetArea area) {
  auto* d = new QDockWidget(title, this);
  d->setObjectName(objectName);
  d->setWidget(content);
  addDockWidget(area, d);
  return d;
}

QDockWidget* MainWindow::dock(const QString& objectName) const { return findChild<QDockWidget*>(objectName); }

void MainWindow::startRuntimeCheck() {
  // The matmul runs on a pool thread: the GUI thread never runs torch.
  auto* watcher = new QFutureWatcher<QString>(this);
  connect(watcher, &QFutureWatcher<QString>::finished, this, [this, watcher] {
    m_runtime->setText(watcher->result());
    watcher->deleteLater();
  });
  watcher->setFuture(QtConcurrent::run([] {
    int threads = configureThreads();
    BlasCheck blas = checkBlas();
    QString text = QString("cpu · %1").arg(QString::fromStdString(runtimeSummary(threads, blas)));
    if (!blas.ok) text += " — " + QString::fromStdString(blas.message);
    return text;
  }));
}

}  // namespace headlab::app
