// MainWindow's toolbar (ablation kind, alpha, reset, grid colouring, log scale) and menus (File,
// View): the actions and what they ask of the window.
#include "main_window.h"

#include <QAction>
#include <cmath>
#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QDockWidget>
#include <QFile>
#include <QFileDialog>
#include <QInputDialog>
#include <QKeySequence>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QMenuBar>
#include <QSignalBlocker>
#include <QSlider>
#include <QStatusBar>
#include <QTableView>
#include <QToolBar>

#include "headlab/views/head_grid_model.h"
#include "headlab/views/heatmap_view.h"
#include "headlab/views/image_attention_view.h"
#include "headlab/views/logits_panel.h"
#include "headlab/views/patching_panel.h"
#include "headlab/views/probe_panel.h"
#include "headlab/views/token_strip.h"
#include "session_controller.h"
#include "trace_export_dialog.h"

namespace headlab::app {

void MainWindow::buildToolbar() {
  QToolBar* tb = addToolBar(tr("Interventions"));
  tb->setObjectName("interventionToolbar");
  m_clickAblates = new QCheckBox(tr("click ablates:"));
  m_clickAblates->setObjectName("clickAblates");
  m_clickAblates->setToolTip(tr("Off: a click on a head selects it; Alt-click or the grid's context menu edits it.\n"
                                "On: a click on a head toggles the chosen edit on it and selects it."));
  tb->addWidget(m_clickAblates);
  m_kind = new QComboBox;
  m_kind->setObjectName("ablationKind");
  const std::pair<views::AblationKind, QString> kinds[] = {
      {views::AblationKind::Zero, tr("zero: the head's output z is set to 0 at every position")},
      {views::AblationKind::Mean, tr("mean: the head's output z is replaced by its mean over this prompt's positions")},
      {views::AblationKind::Uniform, tr("uniform attention: every query attends equally to all the keys it may see")},
      {views::AblationKind::Act, tr("ACT (Yu et al.): the head's attention sinks, found on this prompt, keep 0.4 of their "
                                    "attention and the rest goes to the other keys")},
      {views::AblationKind::Pasta, tr("PASTA (Zhang et al.): the head's attention to every token outside the tokens selected in "
                                      "the token strip (shift-click a span) is scaled by 0.01, then renormalised")}};
  const QString names[] = {tr("zero"), tr("mean"), tr("uniform attention"), tr("ACT sink redistribution"), tr("PASTA steer to selection")};
  for (size_t i = 0; i < std::size(kinds); ++i) {
    m_kind->addItem(names[i], static_cast<int>(kinds[i].first));
    m_kind->setItemData(m_kind->count() - 1, kinds[i].second, Qt::ToolTipRole);
  }
  tb->addWidget(m_kind);
  connect(m_kind, &QComboBox::currentIndexChanged, this, [this] {
    m_gridModel->setAblationKind(static_cast<views::AblationKind>(m_kind->currentData().toInt()));
    m_kind->setToolTip(m_kind->currentData(Qt::ToolTipRole).toString());
  });
  m_kind->setToolTip(m_kind->currentData(Qt::ToolTipRole).toString());
  tb->addWidget(new QLabel(tr("  α ")));
  m_alpha = new QSlider(Qt::Horizontal);
  m_alpha->setObjectName("alphaSlider");
  m_alpha->setRange(0, 400);
  m_alpha->setValue(100);
  m_alpha->setMaximumWidth(160);
  m_alpha->setToolTip(tr("Reweight the selected head: α from 0 to 4"));
  tb->addWidget(m_alpha);
  // The slider's value as a number box: typed values set the slider (and so the head's α), with the
  // range [0, 4] enforced on input.
  auto* alphaValue = new QDoubleSpinBox;
  alphaValue->setObjectName("alphaValue");
  alphaValue->setRange(0.0, 4.0);
  alphaValue->setDecimals(2);
  alphaValue->setSingleStep(0.05);
  alphaValue->setValue(1.0);
  alphaValue->setToolTip(tr("α of the selected head: its output is scaled by α (0 removes it, 1 leaves it, up to 4)"));
  tb->addWidget(alphaValue);
  connect(m_alpha, &QSlider::valueChanged, alphaValue, [alphaValue](int v) {
    QSignalBlocker b(alphaValue);
    alphaValue->setValue(v / 100.0);
  });
  connect(alphaValue, &QDoubleSpinBox::valueChanged, m_alpha, [this](double v) { m_alpha->setValue(static_cast<int>(std::lround(v * 100))); });
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

QStringList MainWindow::examplePrompts(const QString& modelSpec, bool vision) {
  if (modelSpec == "demo")
    return {"the big dog sees the cat . the secret code of anna is 4 7 2 . a cat is red and old . question : the secret code of anna is",
            "the big dog sees the cat . green bird helps old car tree ben green bird helps old car tree",
            "a king is tall and sad . the secret code of leo is 9 1 5 . ida opens a box near the river . question : the secret code of leo is"};
  if (modelSpec == "demo-vlm")
    return {"what colour is at top left ?", "what shape is at top right ?", "what shape is at bottom right ?", "what colour is at bottom left ?"};
  if (vision) return {"USER: <image>\nWhat is shown in this image? ASSISTANT:", "USER: <image>\nWhat colour is the largest object? ASSISTANT:"};
  return {"Once upon a time there was a little girl named Lily. She", "Tom had a red ball. Tom gave the ball to",
          "The cat sat on the mat. The dog sat on the"};
}

void MainWindow::setExamplePrompts(const QStringList& prompts) {
  QMenu* menu = m_examples->menu();
  menu->clear();
  for (const QString& p : prompts) {
    QAction* a = menu->addAction(p.size() > 90 ? p.left(87) + "…" : p, this, [this, p] { runPrompt(p); });
    a->setToolTip(p);
  }
  menu->setToolTipsVisible(true);
  m_examples->setEnabled(!prompts.isEmpty());
}

QStringList MainWindow::currentExamplePrompts() const {
  QStringList out;
  for (QAction* a : m_examples->menu()->actions()) out << a->toolTip();
  return out;
}

bool MainWindow::ablateHead(int layer, int head) {
  if (layer < 0 || layer >= m_layers || head < 0 || head >= m_heads) return false;
  m_gridModel->setEmphasis(m_tokens->selectedPositions());
  if (!m_gridModel->toggleAblation(layer, head)) {
    statusBar()->showMessage(tr("PASTA needs the tokens to emphasise: select them in the token strip first (shift-click a span)"));
    return false;
  }
  selectHead(layer, head);
  return true;
}

// The head grid's context menu: select, add or remove the toolbar's edit kind, remove the head's edits.
void MainWindow::showHeadMenu(const QPoint& at) {
  const QModelIndex idx = m_gridView->indexAt(at);
  if (!idx.isValid()) return;
  const int layer = idx.row(), head = idx.column();
  const views::HeadState& st = m_gridModel->state(layer, head);
  QMenu menu(this);
  menu.addAction(tr("Select L%1 H%2").arg(layer).arg(head), this, [this, layer, head] { selectHead(layer, head); });
  if (st.ablation == views::AblationKind::None)
    menu.addAction(tr("Edit: %1").arg(m_kind->currentText()), this, [this, layer, head] { ablateHead(layer, head); })
        ->setToolTip(m_kind->currentData(Qt::ToolTipRole).toString());
  else
    menu.addAction(tr("Remove %1").arg(views::ablationName(st.ablation)), this, [this, layer, head] { ablateHead(layer, head); });
  if (st.alpha != 1.0f)
    menu.addAction(tr("Reset α (%1) to 1").arg(st.alpha), this, [this, layer, head] { m_gridModel->setAlpha(layer, head, 1.0f); });
  menu.setToolTipsVisible(true);
  menu.exec(m_gridView->viewport()->mapToGlobal(at));
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
  file->addAction(tr("Open &demo model (induction and retrieval heads)"), this, [this] { openModel("demo", examplePrompts("demo", false).value(0)); })
      ->setObjectName("openDemo");
  file->addAction(tr("Open demo-&vlm (a tiny vision-language model, with a scene)"), this,
                  [this] { openModel("demo-vlm", examplePrompts("demo-vlm", true).value(0)); })
      ->setObjectName("openDemoVlm");
  m_loadImageAction = file->addAction(tr("Load &image…"), this, [this] {
    QString f = QFileDialog::getOpenFileName(this, tr("Load image"), {}, tr("Images (*.png *.jpg *.jpeg *.bmp *.ppm *.gif *.webp);;All files (*)"));
    if (!f.isEmpty()) loadImage(f);
  });
  m_loadImageAction->setObjectName("loadImageAction");
  m_loadImageAction->setEnabled(false);  // until a vision-language model is open
  file->addAction(tr("&Export heatmap…"), this, [this] { exportHeatmap(); });
  file->addAction(tr("Export HDF5 &trace…"), this, [this] {
    TraceExportDialog dialog(m_session, m_hookNames, this);
    if (dialog.exec() != QDialog::Accepted) return;
    const QString path = dialog.path();
    if (QFile::exists(path) &&
        QMessageBox::question(this, tr("Export trace"), tr("%1 exists. Replace it?").arg(path)) != QMessageBox::Yes)
      return;
    exportTrace(path, dialog.hooks(), QFile::exists(path));
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
  auto* modelMenu = menuBar()->addMenu(tr("&Model"));
  QAction* check = modelMenu->addAction(tr("&Check faithfulness"), this, [this] { m_session->runChecks(); });
  check->setObjectName("checkModel");
  check->setToolTip(tr("headlab-cli check on the window's prompt: observed hooks change nothing, KV cache = full forward, two runs "
                       "agree, bfloat16/float16 drift"));
  modelMenu->setToolTipsVisible(true);
  auto* viewMenu = menuBar()->addMenu(tr("&View"));
  for (auto* d : findChildren<QDockWidget*>()) viewMenu->addAction(d->toggleViewAction());
  viewMenu->addSeparator();
  QAction* reset = viewMenu->addAction(tr("Reset layout"), this, &MainWindow::resetLayout);
  reset->setObjectName("resetLayoutAction");
}

}  // namespace headlab::app
