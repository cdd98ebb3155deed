#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QComboBox>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QGridLayout>
#include <QGuiApplication>
#include <QImageReader>
#include <QHeaderView>
#include <QInputDialog>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>
#include <QMimeData>
#include <QProgressDialog>
#include <QPushButton>
#include <QSettings>
#include <QShortcut>
#include <QSlider>
#include <QSplitter>
#include <QStatusBar>
#include <QTableView>
#include <QTimer>
#include <QToolBar>
#include <QTreeWidget>
#include <QVBoxLayout>
#include <QRegularExpression>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>
#include <QtConcurrent/QtConcurrent>

#include "headlab/core/startup.h"
#include "headlab/views/head_grid_model.h"
#include "headlab/views/image_attention_view.h"
#include "headlab/views/heatmap_view.h"
#include "headlab/views/logits_panel.h"
#include "headlab/views/patching_panel.h"
#include "headlab/views/probe_panel.h"
#include "headlab/views/token_strip.h"
#include "session_controller.h"

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

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent), m_session(new SessionController(this)) {
  setWindowTitle(QString("HeadLab %1").arg(appVersion()));
  setObjectName("HeadLabMainWindow");
  resize(1400, 900);
  setAcceptDrops(true);

  // Centre: the selected head large, every head of its layer small.
  m_centre = new QSplitter(Qt::Vertical, this);
  m_heatmap = new views::HeatmapView(m_centre);
  m_heatmap->setObjectName("attentionMap");
  m_multiples = new QWidget(m_centre);
  m_multiplesLayout = new QGridLayout(m_multiples);
  m_multiplesLayout->setSpacing(2);
  m_centre->setStretchFactor(0, 3);
  m_centre->setStretchFactor(1, 1);
  setCentralWidget(m_centre);

  buildDocks();
  buildToolbar();
  buildMenus();
  connectSession();

  m_runtime = new QLabel(tr("checking BLAS…"));
  m_recompute = new QLabel;
  m_memory = new QLabel;
  m_memory->setObjectName("memoryLabel");
  m_memory->setToolTip(tr("Memory this process holds (resident set), updated every two seconds"));
  statusBar()->addPermanentWidget(m_recompute);
  statusBar()->addPermanentWidget(m_runtime);
  statusBar()->addPermanentWidget(m_memory);
  auto* memoryTimer = new QTimer(this);
  connect(memoryTimer, &QTimer::timeout, this, &MainWindow::showMemory);
  memoryTimer->start(2000);
  showMemory();
  statusBar()->showMessage(tr("Open a model: File ▸ Open, drop a file here, or a recent model."));
  startRuntimeCheck();

  connectViews();
  connectLens();
  connectProbes();
  connectPatching();
  buildShortcuts();

  m_defaultDockState = saveState();
  QSettings settings;
  restoreGeometry(settings.value("window/geometry").toByteArray());
  m_sizeDocksOnShow = !restoreState(settings.value("window/state").toByteArray());
}

void MainWindow::showEvent(QShowEvent* e) {
  QMainWindow::showEvent(e);
  if (!m_sizeDocksOnShow) return;
  m_sizeDocksOnShow = false;
  QTimer::singleShot(0, this, [this] { resetLayout(); });  // once the window has its final size
}

void MainWindow::resetLayout() {
  restoreState(m_defaultDockState);
  for (auto* d : findChildren<QDockWidget*>()) {
    d->setFloating(false);
    d->setVisible(true);
  }
  dock("probeDock")->raise();
  dock("modelDock")->raise();
  // restoreState lays the docks out on the next turn of the event loop: size them after it.
  QTimer::singleShot(0, this, [this] { sizeDocksForWindow(); });
}

void MainWindow::sizeDocksForWindow() {
  // The prompt needs a line and a row of tokens; the probe and patching panels a few rows; the side
  // columns their tables. What is left, most of the window, goes to the attention maps.
  const int H = height(), W = width();
  resizeDocks({dock("promptDock"), dock("probeDock")}, {90, std::clamp(H * 22 / 100, 150, 260)}, Qt::Vertical);
  resizeDocks({dock("modelDock"), dock("headGridDock")}, {std::clamp(W * 19 / 100, 220, 320), std::clamp(W * 20 / 100, 230, 300)},
              Qt::Horizontal);
  // The grid needs a row per layer (it scrolls for deep models); the logits table its rows.
  resizeDocks({dock("headGridDock"), dock("logitsDock")}, {H * 24 / 100, H * 34 / 100}, Qt::Vertical);
  const int centre = m_centre->height();
  m_centre->setSizes({centre * 7 / 10, centre - centre * 7 / 10});
}

MainWindow::~MainWindow() = default;

void MainWindow::buildDocks() {
  m_modelTree = new QTreeWidget;
  m_modelTree->setHeaderLabels({tr("model"), tr("value")});
  addDock("modelDock", tr("Model"), m_modelTree, Qt::LeftDockWidgetArea);
  addDock("promptDock", tr("Prompt"), buildPromptPanel(), Qt::TopDockWidgetArea);

  m_gridModel = new views::HeadGridModel(this);
  m_gridView = new QTableView;
  m_gridView->setModel(m_gridModel);
  // Every head column in view at once (the grid is read as a heat map: 8 heads or 32), rows scroll.
  m_gridView->horizontalHeader()->setMinimumSectionSize(8);
  m_gridView->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  m_gridView->verticalHeader()->setDefaultSectionSize(22);
  m_gridView->setSelectionMode(QAbstractItemView::SingleSelection);
  m_gridView->viewport()->installEventFilter(this);
  m_gridView->setToolTip(tr("Click: select. Alt-click or the context menu: the toolbar's edit. Wheel: reweight α. Ctrl+arrows: move."));
  addDock("headGridDock", tr("Heads"), m_gridView, Qt::RightDockWidgetArea);
  m_logits = new views::LogitsPanel;
  addDock("logitsDock", tr("Logits"), m_logits, Qt::RightDockWidgetArea);
  m_probes = new views::ProbePanel;
  QDockWidget* probeDock = addDock("probeDock", tr("Probes"), m_probes, Qt::BottomDockWidgetArea);
  m_patching = new views::PatchingPanel;
  const auto [sweepNames, sweepSummaries] = SessionController::sweepKinds();
  m_patching->setSweepKinds(sweepNames, sweepSummaries);
  tabifyDockWidget(probeDock, addDock("patchingDock", tr("Patching"), m_patching, Qt::BottomDockWidgetArea));
  tabifyDockWidget(probeDock, addDock("lensDock", tr("Lens"), buildLensPanel(), Qt::BottomDockWidgetArea));
  probeDock->raise();
  tabifyDockWidget(dock("modelDock"), addDock("imageDock", tr("Image"), buildImagePanel(), Qt::LeftDockWidgetArea));
  dock("modelDock")->raise();
}

// The head grid, the token strip, the attention map and the logits panel, wired to each other.
void MainWindow::connectViews() {
  // A click selects; Alt-click (or any click in the toolbar's "click ablates" mode) edits, too.
  connect(m_gridView, &QTableView::clicked, this, [this](const QModelIndex& idx) {
    const bool edit = (m_gridClickModifiers & Qt::AltModifier) || m_clickAblates->isChecked();
    if (!edit || !ablateHead(idx.row(), idx.column())) selectHead(idx.row(), idx.column());
  });
  m_gridView->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(m_gridView, &QWidget::customContextMenuRequested, this, &MainWindow::showHeadMenu);
  connect(m_gridModel, &views::HeadGridModel::headStateChanged, this, [this] { pushEdits(); });
  connect(m_gridModel, &views::HeadGridModel::allReset, this, [this] { pushEdits(); });
  connect(m_session, &SessionController::predictionsPositionChanged, m_logits, &views::LogitsPanel::setPosition);
  connect(m_tokens, &views::TokenStrip::positionSelected, this, [this](int pos) {
    m_session->setLogitsPosition(pos);  // the logits panel follows the selected chip
    m_heatmap->setHighlightRow(pos);
    for (auto* v : m_multipleViews) v->setHighlightRow(pos);
    showImageAttention();
  });
  connect(m_heatmap, &views::HeatmapView::cellClicked, this, [this](int row, int) { m_tokens->selectPosition(row); });
  connect(m_logits, &views::LogitsPanel::targetChanged, m_session, &SessionController::setTarget);
}

// Ctrl+arrows move the selected head.
void MainWindow::buildShortcuts() {
  auto shortcut = [this](QKeySequence k, int dl, int dh) {
    connect(new QShortcut(k, this), &QShortcut::activated, this, [this, dl, dh] {
      if (m_layers > 0) selectHead(std::clamp(m_layer + dl, 0, m_layers - 1), std::clamp(m_head + dh, 0, m_heads - 1));
    });
  };
  shortcut(QKeySequence(Qt::CTRL | Qt::Key_Up), -1, 0);
  shortcut(QKeySequence(Qt::CTRL | Qt::Key_Down), 1, 0);
  shortcut(QKeySequence(Qt::CTRL | Qt::Key_Left), 0, -1);
  shortcut(QKeySequence(Qt::CTRL | Qt::Key_Right), 0, 1);
}

QString MainWindow::promptText() const { return m_prompt->text(); }


QWidget* MainWindow::buildPromptPanel() {
  auto* w = new QWidget;
  auto* layout = new QVBoxLayout(w);
  layout->setContentsMargins(6, 2, 6, 2);
  layout->setSpacing(3);
  auto* row = new QHBoxLayout;
  m_prompt = new QLineEdit;
  m_prompt->setObjectName("promptEdit");
  m_prompt->setPlaceholderText(tr("Type a prompt and press Enter"));
  auto* run = new QPushButton(tr("Run"));
  m_examples = new QPushButton(tr("Examples"));
  m_examples->setObjectName("examplePrompts");
  m_examples->setToolTip(tr("Prompts that show what this model does"));
  m_examples->setMenu(new QMenu(m_examples));
  row->addWidget(m_prompt, 1);
  row->addWidget(run);
  row->addWidget(m_examples);
  layout->addLayout(row);
  // The prompt dock's own message line: model loading, the prompt's reading, sessions. Cleared by
  // the next prompt or model.
  m_promptMessage = new QLabel;
  m_promptMessage->setObjectName("promptMessage");
  m_promptMessage->setWordWrap(true);
  m_promptMessage->setVisible(false);
  layout->addWidget(m_promptMessage);
  m_tokens = new views::TokenStrip;
  m_tokens->setMaximumHeight(56);  // two rows of tokens; more scroll
  layout->addWidget(m_tokens);
  connect(m_prompt, &QLineEdit::returnPressed, this, [this] { runPrompt(m_prompt->text()); });
  connect(run, &QPushButton::clicked, this, [this] { runPrompt(m_prompt->text()); });
  return w;
}

QDockWidget* MainWindow::addDock(const QString& objectName, const QString& title, QWidget* content, Qt::DockWidgetArea area) {
  auto* d = new QDockWidget(title, this);
  d->setObjectName(objectName);
  d->setWidget(content);
  addDockWidget(area, d);
  return d;
}

QDockWidget* MainWindow::dock(const QString& objectName) const { return findChild<QDockWidget*>(objectName); }

void MainWindow::connectSession() {
  connect(m_session, &SessionController::modelOpened, this, [this](const views::ModelSummary& s) {
    if (m_progress) m_progress->hide();
    addRecent(m_modelSpec);
    showModel(s);
    markStaleResults();
  });
  // One message per place: a failure shows where its job was started (the probe panel, the patching
  // panel, the prompt dock for models and prompts) and, briefly, in the status bar.
  connect(m_session, &SessionController::failed, this, [this](const QString& msg) {
    const QString text = tr("error: %1").arg(msg);
    statusBar()->showMessage(text, 15000);
    if (m_exportPending) m_exportPending = false;
    else if (m_probes->running()) m_probes->setRunning(false), m_probes->setProgress(0, text);
    else if (m_patching->running()) m_patching->setMessage(text);
    else setPromptMessage(text);
  });
  connect(m_session, &SessionController::promptWarning, this, [this](const QString& warning) {
    if (!warning.isEmpty()) setPromptMessage(warning);
  });
  connect(m_session, &SessionController::busyChanged, this, [this](bool busy, const QString& stage) {
    if (busy) statusBar()->showMessage(stage + "…");
    else if (statusBar()->currentMessage().endsWith("…")) statusBar()->clearMessage();  // the work it named is over
    if (!busy && m_progress) m_progress->hide();
  });
  connect(m_session, &SessionController::progress, this, &MainWindow::showLoadProgress);
  connect(m_session, &SessionController::promptReady, this, &MainWindow::showPrompt);
  connect(m_session, &SessionController::imageSpanReady, this, [this](const views::ImageSpan& span) {
    m_imageSpan = span;
    // LLaVA-1.5's 576 patch positions fold into one chip; demo-vlm's 16 stay visible.
    m_tokens->setFoldableSpan(span.begin, span.end, tr("image %1×%1").arg(span.side));
    showImageAttention();
  });
  connect(m_session, &SessionController::vhrApplied, this, [this](bool on, const QString& text) {
    m_vhrLabel->setText(text);
    statusBar()->showMessage(text);
    if (!on && m_vhr->isChecked() && text != tr("VHR off")) {
      QSignalBlocker b(m_vhr);
      m_vhr->setChecked(false);
    }
  });
  // Model ▸ Check: the results under "checks" in the Model dock (the model's status), one line in the status bar.
  connect(m_session, &SessionController::checksReady, this, [this](const QStringList& lines, bool passed, int tokens) {
    for (int i = m_modelTree->topLevelItemCount() - 1; i >= 0; --i)
      if (m_modelTree->topLevelItem(i)->text(0) == tr("checks")) delete m_modelTree->takeTopLevelItem(i);
    auto* item = new QTreeWidgetItem(m_modelTree, {tr("checks"), passed ? tr("all passed (%1 tokens)").arg(tokens) : tr("FAILED")});
    for (const QString& line : lines) {
      auto* child = new QTreeWidgetItem(item, {line.section(':', 0, 0), line.section(':', 1).trimmed()});
      child->setToolTip(0, line), child->setToolTip(1, line);
    }
    item->setExpanded(true);
    m_modelTree->scrollToItem(item);
    dock("modelDock")->raise();
    statusBar()->showMessage(passed ? tr("model checks: all %1 passed on %2 tokens").arg(lines.size()).arg(tokens)
                                    : tr("model checks: some FAILED (see the Model dock)"));
  });
  connect(m_session, &SessionController::traceExported, this, [this](const QString& path, qint64 bytes) {
    m_exportPending = false;
    statusBar()->showMessage(tr("trace written: %1 (%2 MB)").arg(path).arg(bytes / 1e6, 0, 'f', 2));
  });
  connect(m_session, &SessionController::captureEstimate, this, [this](qint64 bytes, int hooks) {
    m_recompute->setText(tr("capture of %1 hooks ≈ %2 MB").arg(hooks).arg(bytes / 1e6, 0, 'f', 2));
  });
  connect(m_session, &SessionController::headScoresReady, this, [this](const views::HeadScores& f, const views::HeadScores& e) {
    m_firstToken = f, m_entropy = e;
    applyScoreChoice();
  });
  connect(m_session, &SessionController::layerPatternsReady, this, [this](int layer, const std::vector<views::HeatmapData>& heads) {
    showLayer(layer, heads);
  });
  connect(m_session, &SessionController::predictionsReady, this,
          [this](const std::vector<views::TokenProb>& top, const views::TokenProb& target, int from, double ms) {
            m_logits->setPredictions(top, target);
            m_lastFrom = from;
            if (ms > 0)
              m_recompute->setText(from >= m_layers ? tr("no change") : tr("recomputed layers %1–%2 in %3 ms").arg(from).arg(m_layers - 1).arg(ms, 0, 'f', 1));
          });
}

// The one-time demo training: a dialog with Cancel (the worker stops at its next step).
void MainWindow::showLoadProgress(double f, const QString& stage) {
  if (!m_progress) {
    m_progress = new QProgressDialog(this);
    m_progress->setWindowTitle(tr("Preparing the demo model"));
    m_progress->setRange(0, 1000);
    m_progress->setMinimumDuration(0);
    connect(m_progress, &QProgressDialog::canceled, m_session, &SessionController::cancel);
  }
  m_progress->setLabelText(stage);
  m_progress->setValue(static_cast<int>(f * 1000));
  if (f >= 1.0) m_progress->hide();
  else if (!m_progress->isVisible()) m_progress->show();
}

// A prompt ran: its tokens, then the edits and head a restored session was waiting to apply.
void MainWindow::setPromptMessage(const QString& text) {
  m_promptMessage->setText(text);
  m_promptMessage->setToolTip(text);
  m_promptMessage->setVisible(!text.isEmpty());
}

void MainWindow::showPrompt(const QStringList& pieces, const QVector<int>& ids) {
  m_tokens->setTokens(pieces, ids);
  m_patching->setWindowPrompt(m_prompt->text());
  markStaleResults();
  statusBar()->showMessage(tr("%1 tokens").arg(pieces.size()));
  if (!m_pendingEdits.empty() || m_pendingLayer >= 0) {
    std::vector<views::HeadState> states(static_cast<size_t>(m_layers * m_heads));
    for (const auto& e : m_pendingEdits) {
      if (e.layer >= m_layers || e.head >= m_heads)
        m_refusedEdits << tr("edit of layer %1, head %2: the model has %3 layers of %4 heads").arg(e.layer).arg(e.head).arg(m_layers).arg(m_heads);
      else if (!e.state.keys.isEmpty() && e.state.keys.back() >= pieces.size())
        m_refusedEdits << tr("edit of layer %1, head %2: PASTA position %3 is past the prompt's %4 tokens").arg(e.layer).arg(e.head).arg(e.state.keys.back()).arg(pieces.size());
      else
        states[static_cast<size_t>(e.layer * m_heads + e.head)] = e.state;
    }
    m_gridModel->setStates(states);
    m_pendingEdits.clear();
    pushEdits();
    if (m_pendingLayer >= 0) selectHead(m_pendingLayer, m_pendingHead);
    m_pendingLayer = m_pendingHead = -1;
  }
  const bool reportRefused = m_reportRefused;
  m_reportRefused = false;
  // A session's edits that could not be applied are listed, not dropped.
  if (reportRefused && !m_refusedEdits.isEmpty()) {
    const QString text = tr("session: %n edit(s) refused: ", nullptr, m_refusedEdits.size()) + m_refusedEdits.join("; ");
    statusBar()->showMessage(text);
    setPromptMessage(text);
  }
  if (m_pendingVhr) {
    m_pendingVhr = false;
    m_vhr->setChecked(true);
  }
}

void MainWindow::openModel(const QString& spec, const QString& prompt, const QString& image) {
  setPromptMessage({});
  m_pendingPrompt = prompt;
  m_pendingImage = image;
  m_modelSpec = spec;
  m_session->openModel(spec);  // Open recent gains the model once it has opened (modelOpened)
}

void MainWindow::runPrompt(const QString& prompt) {
  if (m_prompt->text() != prompt) m_prompt->setText(prompt);
  if (prompt.isEmpty()) {
    statusBar()->showMessage(tr("error: empty prompt: type some text first"));
    setPromptMessage(tr("error: empty prompt: type some text first"));
    return;
  }
  setPromptMessage({});
  m_session->runPrompt(prompt);
}

void MainWindow::showModel(const views::ModelSummary& s) {
  m_layers = s.layers, m_heads = s.heads;
  m_layer = m_head = 0;
  m_gridModel->setShape(s.layers, s.heads);
  m_probeScores.clear();  // probe colourings belong to the previous model
  while (m_score->count() > 2) m_score->removeItem(m_score->count() - 1);
  m_score->setCurrentIndex(0);  // a new model starts coloured by attention to the first token
  m_modelTree->clear();
  auto* cfg = new QTreeWidgetItem(m_modelTree, {tr("config"), s.format});
  const QStringList lines = s.configJson.split('\n');
  for (const QString& line : lines) {
    QString t = line.trimmed();
    if (!t.contains(':')) continue;
    QString key = t.section(':', 0, 0).remove('"'), value = t.section(':', 1).trimmed().remove(QRegularExpression(",$")).remove('"');
    new QTreeWidgetItem(cfg, {key, value});
  }
  m_hookNames = s.hookNames;
  auto* hooks = new QTreeWidgetItem(m_modelTree, {tr("hook points"), QString::number(s.hookNames.size())});
  QTreeWidgetItem* block = nullptr;
  QString blockName;
  for (const QString& h : s.hookNames) {
    QString b = h.startsWith("blocks.") ? h.section('.', 0, 1) : QString();
    if (b.isEmpty()) {
      new QTreeWidgetItem(hooks, {h});
      continue;
    }
    if (b != blockName) block = new QTreeWidgetItem(hooks, {b}), blockName = b;
    new QTreeWidgetItem(block, {h.section('.', 2)});
  }
  cfg->setExpanded(true);
  m_modelTree->resizeColumnToContents(0);
  setWindowTitle(QString("HeadLab — %1").arg(s.source));
  m_vision = s.patchSide > 0;
  m_patching->setImageInputs(m_vision);
  m_imageView->parentWidget()->setEnabled(m_vision);
  m_loadImageAction->setEnabled(m_vision);
  setExamplePrompts(examplePrompts(m_modelSpec, m_vision));
  m_image = QImage();
  m_imagePath.clear();
  m_imageSpan = {};
  m_tokens->setFoldableSpan(-1, -1, QString());
  m_imageView->setImage(QImage());
  {
    QSignalBlocker b(m_vhr);
    m_vhr->setChecked(false);
  }
  m_vhrLabel->clear();
  if (m_vision) dock("imageDock")->raise(), dock("imageDock")->show();
  if (!m_pendingImage.isEmpty()) {
    QImageReader reader(m_pendingImage);
    const QImage image = reader.read();
    if (image.isNull()) statusBar()->showMessage(tr("error: %1: cannot read the image (%2)").arg(m_pendingImage, reader.errorString()));
    else setImage(image, false), m_imagePath = QFileInfo(m_pendingImage).absoluteFilePath();  // the pending prompt runs next, with the image
    m_pendingImage.clear();
  } else if (m_modelSpec == "demo-vlm") {
    setImage(demoVlmExampleScene(), false);  // demo-vlm only knows its scenes: start with one
  }
  m_imageNote->setText(m_modelSpec == "demo-vlm" ? tr("demo-vlm knows only its own 16×16 scenes (hover for what they are)") : QString());
  m_imageNote->setToolTip(m_modelSpec == "demo-vlm" ? tr(kDemoVlmNote) : QString());
  m_imageNote->setVisible(m_modelSpec == "demo-vlm");
  statusBar()->showMessage(tr("opened %1 (%2 layers × %3 heads, %4 kv heads) on %5").arg(s.source).arg(s.layers).arg(s.heads).arg(s.kvHeads).arg(s.device));
  if (!m_pendingPrompt.isEmpty()) runPrompt(m_pendingPrompt);
}

void MainWindow::selectHead(int layer, int head) {
  if (layer < 0 || layer >= m_layers || head < 0 || head >= m_heads) return;
  const bool newLayer = layer != m_layer || m_layerPatterns.empty();
  m_layer = layer, m_head = head;
  m_gridView->setCurrentIndex(m_gridModel->index(layer, head));
  {
    QSignalBlocker b(m_alpha);
    m_alpha->setValue(static_cast<int>(m_gridModel->state(layer, head).alpha * 100));
  }
  if (newLayer) m_session->selectLayer(layer);
  else showCurrentHead();
}

void MainWindow::showLayer(int layer, const std::vector<views::HeatmapData>& heads) {
  if (layer != m_layer) return;  // a stale answer for a layer the user has left
  m_layerPatterns = heads;
  if (m_multipleViews.size() != heads.size()) {
    for (auto* v : m_multipleViews) v->deleteLater();
    m_multipleViews.clear();
    // As many columns as fit at about 100 px each: few rows, so the selected head's map keeps the height.
    const int fit = std::max(1, m_multiples->width() / 100);
    const int n = static_cast<int>(heads.size());
    const int cols = std::max(1, std::min(n, std::max(fit, static_cast<int>(std::ceil(std::sqrt(n * 2.0))))));
    for (size_t h = 0; h < heads.size(); ++h) {
      auto* v = new views::HeatmapView(m_multiples);
      v->setMinimumSize(48, 54);  // its title and a few rows of cells
      v->setCompact(true);
      v->setLogScale(m_log->isChecked());
      m_multiplesLayout->addWidget(v, static_cast<int>(h) / cols, static_cast<int>(h) % cols);
      connect(v, &views::HeatmapView::cellClicked, this, [this, h] { selectHead(m_layer, static_cast<int>(h)); });
      m_multipleViews.push_back(v);
    }
  }
  for (size_t h = 0; h < heads.size(); ++h) {
    views::HeatmapData small = heads[h];
    small.rowLabels.clear(), small.colLabels.clear();
    m_multipleViews[h]->setData(small);
  }
  showCurrentHead();
}

void MainWindow::showCurrentHead() {
  if (m_head < 0 || m_head >= static_cast<int>(m_layerPatterns.size())) return;
  views::HeatmapData d = m_layerPatterns[m_head];
  const auto& st = m_gridModel->state(m_layer, m_head);
  // Say whether the map is the pattern after the edit: zero, mean and α act on the head's output, so the
  // pattern they leave is the unedited one; uniform, ACT and PASTA change the pattern itself.
  const bool patternEdit = st.ablation == views::AblationKind::Uniform || st.ablation == views::AblationKind::Act ||
                           st.ablation == views::AblationKind::Pasta;
  QStringList outputEdits;
  if (st.ablation != views::AblationKind::None && !patternEdit) outputEdits << views::ablationName(st.ablation);
  if (st.alpha != 1.0f) outputEdits << QString("α=%1").arg(st.alpha);
  if (patternEdit) d.title += tr("  · pattern after %1").arg(views::ablationName(st.ablation));
  if (!outputEdits.isEmpty())
    d.title += tr("  · %1 on the head's output (%2)").arg(outputEdits.join(", "), patternEdit ? tr("after the pattern") : tr("pattern unchanged"));
  m_heatmap->setData(d);
  m_heatmap->setExportMetadata(figureMetadata());
  for (auto* v : m_multipleViews) v->setExportMetadata(figureMetadata());
  m_heatmap->setHighlightRow(m_tokens->selectedPosition());
  showImageAttention();
}

void MainWindow::pushEdits() {
  std::vector<views::HeadEdit> edits;
  for (int l = 0; l < m_layers; ++l)
    for (int h = 0; h < m_heads; ++h)
      if (m_gridModel->state(l, h).edited()) edits.push_back({l, h, m_gridModel->state(l, h)});
  m_session->setEdits(edits);
}

void MainWindow::applyScoreChoice() {
  const int i = m_score->currentIndex();
  // While the menu is rebuilt (a new model, a new result) its index can point past the results held.
  if (i < 0 || i - 2 >= static_cast<int>(m_probeScores.size())) return;
  const views::HeadScores& s = i == 0 ? m_firstToken : i == 1 ? m_entropy : m_probeScores[static_cast<size_t>(i - 2)];
  if (s.layers == m_layers && s.heads == m_heads) m_gridModel->setScores(s);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
  if (e->mimeData()->hasUrls()) e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
  const auto urls = e->mimeData()->urls();
  if (urls.isEmpty() || !urls.first().isLocalFile()) return;
  const QString path = urls.first().toLocalFile();
  if (isImageFile(path)) loadImage(path);
  else openModel(path);
}

void MainWindow::closeEvent(QCloseEvent* e) {
  QSettings settings;
  settings.setValue("window/geometry", saveGeometry());
  settings.setValue("window/state", saveState());
  QMainWindow::closeEvent(e);
}

bool MainWindow::eventFilter(QObject* watched, QEvent* event) {
  if (watched == m_gridView->viewport() && event->type() == QEvent::MouseButtonPress)
    m_gridClickModifiers = static_cast<QMouseEvent*>(event)->modifiers();  // clicked() carries none
  if (watched == m_gridView->viewport() && event->type() == QEvent::Wheel) {
    auto* we = static_cast<QWheelEvent*>(event);
    QModelIndex idx = m_gridView->indexAt(we->position().toPoint());
    if (idx.isValid()) {
      float step = we->angleDelta().y() > 0 ? 0.25f : -0.25f;
      m_gridModel->setAlpha(idx.row(), idx.column(), m_gridModel->state(idx.row(), idx.column()).alpha + step);
      selectHead(idx.row(), idx.column());
      return true;
    }
  }
  return QMainWindow::eventFilter(watched, event);
}

// The status bar's fixed section: the resident memory of the process, from /proc (Linux); hidden
// where it cannot be read.
void MainWindow::showMemory() {
  QFile statm("/proc/self/statm");
  if (!statm.open(QIODevice::ReadOnly)) return m_memory->hide();
  const QList<QByteArray> fields = statm.readAll().split(' ');
  const double bytes = fields.size() > 1 ? fields[1].toDouble() * 4096.0 : 0.0;  // resident pages (4 KiB on Linux x86-64)
  m_memory->setText(bytes >= 1e9 ? tr("%1 GB").arg(bytes / 1e9, 0, 'f', 2) : tr("%1 MB").arg(bytes / 1e6, 0, 'f', 0));
}

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
