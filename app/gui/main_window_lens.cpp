// The window's Lens dock (issue #23): the logit lens as a layer x position map (hover: each cell's top
// tokens; click: that layer and position everywhere) and direct logit attribution as a head-grid
// colouring with its decomposition.
#include <QComboBox>
#include <QDockWidget>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>

#include "headlab/views/heatmap_view.h"
#include "headlab/views/token_strip.h"
#include "main_window.h"
#include "session_controller.h"

namespace headlab::app {

QWidget* MainWindow::buildLensPanel() {
  auto* w = new QWidget;
  auto* layout = new QVBoxLayout(w);
  auto* row = new QHBoxLayout;
  auto* lens = new QPushButton(tr("Run the logit lens"));
  lens->setObjectName("runLens");
  lens->setToolTip(tr("The final norm and unembedding on every layer's output: what each layer already predicts at each "
                      "position (with the window's edits; once run, it follows every edit and prompt). Hover a cell for its "
                      "top tokens; click it to select that layer and position."));
  auto* dla = new QPushButton(tr("Attribute the logit (DLA)"));
  dla->setObjectName("runDla");
  dla->setToolTip(tr("Direct logit attribution of the followed token (else the top prediction) at the logits panel's position: "
                     "each head's and MLP's share, through the final norm with its scale frozen; colours the head grid."));
  row->addWidget(lens);
  row->addWidget(dla);
  row->addStretch();
  layout->addLayout(row);
  m_lensSummary = new QLabel;
  m_lensSummary->setObjectName("lensSummary");
  m_lensSummary->setWordWrap(true);
  layout->addWidget(m_lensSummary);
  m_lens = new views::HeatmapView;
  layout->addWidget(m_lens, 1);
  connect(lens, &QPushButton::clicked, this, [this] {
    m_lensLive = true, m_lensQuiet = false;
    m_session->runLens();
  });
  connect(dla, &QPushButton::clicked, m_session, &SessionController::runDla);
  return w;
}

void MainWindow::connectLens() {
  connect(m_session, &SessionController::lensReady, this, [this](const views::HeatmapData& d, const QString& summary) {
    m_lens->setData(d);
    m_lens->setExportMetadata(figureMetadata());
    m_lensSummary->setText(summary);
    if (!m_lensQuiet) dock("lensDock")->raise();
    m_lensQuiet = false;
  });
  // The lens follows the window's edits and prompts once it has been run (issue #23).
  connect(m_session, &SessionController::predictionsReady, this, [this](const auto&, const auto&, int from, double) {
    if (!m_lensLive || from >= m_layers) return;  // nothing recomputed (e.g. the logits panel moved)
    m_lensQuiet = true;
    m_session->runLens();
  });
  connect(m_session, &SessionController::modelOpened, this, [this] { m_lensLive = false; });
  connect(m_session, &SessionController::dlaReady, this, [this](const views::HeadScores& heads, const QString& summary) {
    m_lensSummary->setText(summary);
    if (heads.layers != m_layers || heads.heads != m_heads) return;
    m_score->setCurrentIndex(2 + addColouring(heads));
    applyScoreChoice();
    dock("lensDock")->raise();
  });
  // A lens cell selects its layer (keeping the head) and its position.
  connect(m_lens, &views::HeatmapView::cellClicked, this, [this](int layer, int position) {
    selectHead(layer, m_head);
    m_tokens->selectPosition(position);
  });
}

}  // namespace headlab::app
