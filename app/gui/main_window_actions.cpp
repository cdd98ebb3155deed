// MainWindow's toolbar (ablation kind, alpha, reset, grid colouring, log scale) and menus (File,
// View): the actions and what they ask of the window.
#include "main_window.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QDockWidget>
#include <QFile>
#include <QFileDialog>
#include <QInputDialog>
#include <QKeySequence>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QSignalBlocker>
#include <QSlider>
#include <QStatusBar>
#include <QToolBar>

#include "headlab/views/head_grid_model.h"
#include "headlab/views/heatmap_view.h"
#include "headlab/views/image_attention_view.h"
#include "headlab/views/logits_panel.h"
#include "headlab/views/patching_panel.h"
#include "headlab/views/probe_panel.h"
#include "headlab/views/token_strip.h"
#include "session_controller.h"

namespace headlab::app {

void MainWindow::buildToolbar() {
  QToolBar* tb = addToolBar(tr("Interventions"));
  tb->setObjectName("interventionToolbar");
  tb->addWidget(new QLabel(tr(" click ablates: ")));
  m_kind = new QComboBox;
  m_kind->setObjectName("ablationKind");
  m_kind->addItem(tr("zero"), static_cast<int>(views::AblationKind::Zero));
  m_kind->addItem(tr("mean"), static_cast<int>(views::AblationKind::Mean));
  m_kind->addItem(tr("uniform attention"), static_cast<int>(views::AblationKind::Uniform));
  m_kind->addItem(tr("ACT sink redistribution"), static_cast<int>(views::AblationKind::Act));
  m_kind->setItemData(m_kind->count() - 1, tr("ACT (Yu et al.): the head's attention sinks, found on this prompt, keep 0.4 of their "
                                              "attention and the rest goes to the other keys"), Qt::ToolTipRole);
  tb->addWidget(m_kind);
  connect(m_kind, &QComboBox::currentIndexChanged, this, [this] {
    m_gridModel->setAblationKind(static_cast<views::AblationKind>(m_kind->currentData().toInt()));
  });
  tb->addWidget(new QLabel(tr("  α ")));
  m_alpha = new QSlider(Qt::Horizontal);
  m_alpha->setObjectName("alphaSlider");
  m_alpha->setRange(0, 400);
  m_alpha->setValue(100);
  m_alpha->setMaximumWidth(160);
  m_alpha->setToolTip(tr("Reweight the selected head: α from 0 to 4"));
  tb->addWidget(m_alpha);
  auto* alphaValue = new QLabel("1.00");
  alphaValue->setObjectName("alphaValue");
  alphaValue->setMinimumWidth(alphaValue->fontMetrics().horizontalAdvance("4.00 "));
  tb->addWidget(alphaValue);
  connect(m_alpha, &QSlider::valueChanged, alphaValue, [alphaValue](int v) { alphaValue->setText(QString::number(v / 100.0, 'f', 2)); });
  connect(m_alpha, &QSlider::valueChanged, this, [this](int v) {
    if (m_layers > 0) m_gridModel->setAlpha(m_layer, m_head, v / 100.0f);
  });
  QAction* reset = tb->addAction(tr("Reset all"));
  reset->setObjectName("resetAll");
  connect(reset, &QAction::triggered, this, [this] {
    QSignalBlocker b(m_alpha);
    m_alpha->setValue(100);
    m_gridModel->resetAll();
  });
  tb->addSeparator();
  tb->addWidget(new QLabel(tr(" colour: ")));
  m_score = new QComboBox;
  m_score->addItems({tr("attention to first token"), tr("attention entropy")});
  tb->addWidget(m_score);
  connect(m_score, &QComboBox::currentIndexChanged, this, [this] { applyScoreChoice(); });
  m_log = new QCheckBox(tr("log scale"));
  tb->addWidget(m_log);
  connect(m_log, &QCheckBox::toggled, this, [this](bool on) {
    m_heatmap->setLogScale(on);
    for (auto* v : m_multipleViews) v->setLogScale(on);
  });
}

void MainWindow::buildMenus() {
  auto* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&Open model file…"), QKeySequence::Open, this, [this] {
    QString f = QFileDialog::getOpenFileName(this, tr("Open model"), {}, tr("Models (*.gguf *.bin);;All files (*)"));
    if (!f.isEmpty()) openModel(f);
  });
  file->addAction(tr("Open model &folder…"), this, [this] {
    QString d = QFileDialog::getExistingDirectory(this, tr("Open Hugging Face model folder"));
    if (!d.isEmpty()) openModel(d);
  });
  m_recentMenu = file->addMenu(tr("Open &recent"));
  refreshRecentMenu();
  file->addAction(tr("Load &image…"), this, [this] {
    QString f = QFileDialog::getOpenFileName(this, tr("Load image"), {}, tr("Images (*.png *.jpg *.jpeg *.bmp *.ppm *.gif *.webp);;All files (*)"));
    if (!f.isEmpty()) loadImage(f);
  });
  file->addAction(tr("&Export heatmap…"), this, [this] { exportHeatmap(); });
  file->addAction(tr("Export HDF5 &trace…"), this, [this] {
    QString hooks = QInputDialog::getText(this, tr("Export trace"), tr("hooks (globs, comma-separated):"), QLineEdit::Normal,
                                          "blocks.*.attn.hook_pattern");
    if (hooks.isEmpty()) return;
    m_session->estimateTrace(hooks);  // the estimate shows in the status bar while the dialog is open
    QString path = QFileDialog::getSaveFileName(this, tr("Export trace"), "trace.h5", tr("HDF5 (*.h5)"));
    if (!path.isEmpty()) exportTrace(path, hooks, QFile::exists(path));  // the dialog already asked to overwrite
  });
  file->addAction(tr("Export probe result as &JSON…"), this, [this] {
    QString path = QFileDialog::getSaveFileName(this, tr("Export probe result"), "result.json", tr("JSON (*.json)"));
    if (!path.isEmpty()) exportProbeResult(path);
  });
  file->addAction(tr("&Save session…"), QKeySequence::Save, this, [this] {
    QString path = QFileDialog::getSaveFileName(this, tr("Save session"), "session.headlab.json", tr("Sessions (*.json)"));
    if (!path.isEmpty()) saveSession(path);
  });
  file->addAction(tr("Open sess&ion…"), this, [this] {
    QString path = QFileDialog::getOpenFileName(this, tr("Open session"), {}, tr("Sessions (*.json)"));
    if (!path.isEmpty()) openSession(path);
  });
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);
  auto* viewMenu = menuBar()->addMenu(tr("&View"));
  for (auto* d : findChildren<QDockWidget*>()) viewMenu->addAction(d->toggleViewAction());
  viewMenu->addSeparator();
  QAction* reset = viewMenu->addAction(tr("Reset layout"), this, &MainWindow::resetLayout);
  reset->setObjectName("resetLayoutAction");
}

}  // namespace headlab::app
