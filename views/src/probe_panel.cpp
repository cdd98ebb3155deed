#include "headlab/views/probe_panel.h"

#include "headlab/views/heatmap_view.h"

#include <algorithm>

#include <qcustomplot.h>

#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QFileDialog>
#include <QMenu>
#include <QMessageBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>

namespace headlab::views {

namespace {
// Numbers sort as numbers in the table.
class NumberItem : public QTableWidgetItem {
 public:
  explicit NumberItem(double v, int digits = 4) : QTableWidgetItem(QString::number(v, 'f', digits)), m_v(v) {}
  bool operator<(const QTableWidgetItem& o) const override {
    auto* n = dynamic_cast<const NumberItem*>(&o);
    return n ? m_v < n->m_v : QTableWidgetItem::operator<(o);
  }

 private:
  double m_v;
};
}  // namespace

ProbePanel::ProbePanel(QWidget* parent)
    : QWidget(parent), m_combo(new QComboBox), m_description(new QLabel), m_params(new QPlainTextEdit), m_run(new QPushButton(tr("Run"))),
      m_cancel(new QPushButton(tr("Cancel"))), m_copy(new QPushButton(tr("Copy TSV"))), m_bar(new QProgressBar), m_stage(new QLabel),
      m_summary(new QLabel), m_table(new QTableWidget(0, 3)), m_plot(new QCustomPlot), m_source(new QComboBox) {
  setUpPromptSource();
  m_combo->setObjectName("probeCombo");
  m_run->setObjectName("probeRun");
  m_cancel->setObjectName("probeCancel");
  m_description->setWordWrap(true);
  // A long description would make the dock tall: the label shows two or three lines, the whole text is
  // in its tooltip and the combo's.
  m_description->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Ignored);
  m_description->setMinimumHeight(2 * m_description->fontMetrics().lineSpacing() + 2);
  m_description->setMaximumHeight(3 * m_description->fontMetrics().lineSpacing() + 2);
  m_description->setAlignment(Qt::AlignTop | Qt::AlignLeft);
  m_summary->setWordWrap(true);
  m_params->setMaximumHeight(90);
  m_params->setMinimumHeight(3 * m_params->fontMetrics().lineSpacing());
  m_params->setToolTip(tr("Parameters as JSON; defaults filled in"));
  m_bar->setRange(0, 1000);
  // The progress bar shows while a probe runs, the stage line while it has something to say (a stage,
  // "cancelled", an error), the summary once there is one: idle, the panel is short.
  m_bar->setVisible(false);
  m_stage->setVisible(false);
  m_summary->setVisible(false);
  m_table->setHorizontalHeaderLabels({tr("layer"), tr("head"), tr("score")});
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  m_table->verticalHeader()->hide();
  m_table->setSortingEnabled(true);
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  auto* left = new QVBoxLayout;
  auto* top = new QHBoxLayout;
  top->addWidget(m_combo, 1);
  top->addWidget(m_source);
  top->addWidget(m_run);
  top->addWidget(m_cancel);
  left->addLayout(top);
  left->addWidget(m_description);
  left->addWidget(m_params);
  left->addWidget(m_bar);
  left->addWidget(m_stage);
  left->addWidget(m_summary);
  auto* right = new QVBoxLayout;
  right->addWidget(m_table, 2);
  right->addWidget(m_copy);
  m_plot->setMinimumHeight(120);
  m_plot->addGraph();
  m_plot->graph(0)->setPen(QPen(QColor(59, 82, 139), 2));
  m_plot->setVisible(false);
  setUpCurveMenu();
  right->addWidget(m_plot, 1);
  auto* layout = new QHBoxLayout(this);
  layout->addLayout(left, 1);
  layout->addLayout(right, 1);
  m_cancel->setEnabled(false);
  connect(m_combo, &QComboBox::currentIndexChanged, this, [this](int i) {
    if (i < 0 || i >= static_cast<int>(m_probes.size())) return;
    m_description->setText(m_probes[i].description);
    m_description->setToolTip(m_probes[i].description);
    m_combo->setToolTip(m_probes[i].description);
    m_params->setPlainText(m_probes[i].defaultParams);
  });
  connect(m_run, &QPushButton::clicked, this, [this] { emit runRequested(currentProbe(), paramsText()); });
  connect(m_cancel, &QPushButton::clicked, this, [this] {
    setStage(tr("cancelling…"));
    emit cancelRequested();
  });
  connect(m_copy, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(tableAsTsv()); });
  connect(m_table, &QTableWidget::cellClicked, this, [this](int row, int) {
    emit headSelected(m_table->item(row, 0)->text().toInt(), m_table->item(row, 1)->text().toInt());
  });
}

// The prompt-source choice: the window's prompt (default) or the probe's built-in set.
void ProbePanel::setUpPromptSource() {
  m_source->setObjectName("probeSource");
  m_source->addItems({tr("on the window's prompt"), tr("on the probe's built-in prompts")});
  // Choosing the built-in set puts the probe's own prompt parameters back (the window's prompt was
  // written into them by the last run on it).
  connect(m_source, &QComboBox::currentIndexChanged, this, [this](int index) {
    const int probe = m_combo->currentIndex();
    if (index != 1 || probe < 0 || probe >= static_cast<int>(m_probes.size())) return;
    QJsonObject params = QJsonDocument::fromJson(m_params->toPlainText().toUtf8()).object();
    const QJsonObject defaults = QJsonDocument::fromJson(m_probes[probe].defaultParams.toUtf8()).object();
    for (const char* key : {"prompt", "prompts", "short_prompts"})
      if (defaults.contains(key)) params[key] = defaults[key];
    if (!params.isEmpty()) m_params->setPlainText(QString::fromUtf8(QJsonDocument(params).toJson(QJsonDocument::Indented)));
  });
  m_source->setToolTip(tr("Probes that read prompts (sinks, massive, hidden-sinks, streaming, the vision probes) take the "
                          "window's prompt, or their own built-in prompt set. Induction and retrieval build their own inputs."));
}

void ProbePanel::setUpCurveMenu() {
  // The curve exports from its context menu, as every plot does.
  m_plot->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(m_plot, &QWidget::customContextMenuRequested, this, [this](const QPoint& at) {
    QMenu menu(this);
    menu.addAction(tr("Export figure (PNG, PDF)…"), this, [this] {
      const QString path = QFileDialog::getSaveFileName(this, tr("Export figure"), "curve.pdf", tr("PDF (*.pdf);;PNG (*.png)"));
      if (!path.isEmpty() && !exportPlot(m_plot, path, 900, 500, m_plot->graph(0)->name()))
        QMessageBox::warning(this, tr("Export figure"), tr("cannot write %1").arg(path));
    });
    menu.exec(m_plot->mapToGlobal(at));
  });
}

void ProbePanel::setProbes(const std::vector<ProbeInfo>& probes) {
  m_probes = probes;
  QSignalBlocker b(m_combo);
  m_combo->clear();
  for (const auto& p : probes) m_combo->addItem(p.name);
  if (!probes.empty()) {
    m_combo->setCurrentIndex(0);
    m_description->setText(probes[0].description);
    m_params->setPlainText(probes[0].defaultParams);
  }
}

void ProbePanel::selectProbe(const QString& name) { m_combo->setCurrentText(name); }
QString ProbePanel::currentProbe() const { return m_combo->currentText(); }
QString ProbePanel::paramsText() const { return m_params->toPlainText(); }
void ProbePanel::setParamsText(const QString& json) { m_params->setPlainText(json); }

void ProbePanel::setRunning(bool running) {
  m_running = running;
  m_run->setEnabled(!running);
  m_cancel->setEnabled(running);
  m_bar->setVisible(running);
  if (running) m_bar->setValue(0), setStage(tr("starting…"));
}

void ProbePanel::setStage(const QString& stage) {
  m_stage->setText(stage);
  m_stage->setVisible(!stage.isEmpty());
}

void ProbePanel::setProgress(double fraction, const QString& stage) {
  m_bar->setValue(static_cast<int>(fraction * 1000));
  setStage(stage);
}

bool ProbePanel::onWindowPrompt() const { return m_source->currentIndex() == 0; }
void ProbePanel::setOnWindowPrompt(bool on) { m_source->setCurrentIndex(on ? 0 : 1); }

void ProbePanel::setStale(const QString& reason) {
  m_staleReason = reason;
  m_summary->setText(reason.isEmpty() ? m_summaryText : tr("stale (%1): ").arg(reason) + m_summaryText);
  m_summary->setStyleSheet(reason.isEmpty() ? QString() : "color: #8a6d00;");
  m_table->setEnabled(reason.isEmpty() || m_table->rowCount() == 0);
  m_table->setToolTip(reason.isEmpty() ? QString() : tr("computed before %1").arg(reason));
}

void ProbePanel::setResult(const HeadScores& s, const QString& summary) {
  m_summaryText = summary;
  m_staleReason.clear();
  m_summary->setStyleSheet({});
  m_table->setEnabled(true);
  m_table->setToolTip({});
  m_summary->setText(summary);
  m_summary->setVisible(!summary.isEmpty());
  setStage({});
  m_table->setSortingEnabled(false);
  m_table->setRowCount(0);
  for (int l = 0; l < s.layers; ++l)
    for (int h = 0; h < s.heads; ++h) {
      const float v = s.values[static_cast<size_t>(l) * s.heads + h];
      if (!std::isfinite(v)) continue;
      const int r = m_table->rowCount();
      m_table->insertRow(r);
      m_table->setItem(r, 0, new NumberItem(l, 0));
      m_table->setItem(r, 1, new NumberItem(h, 0));
      m_table->setItem(r, 2, new NumberItem(v));
    }
  m_table->setSortingEnabled(true);
  m_table->sortItems(2, Qt::DescendingOrder);
  m_bar->setValue(1000);
}

void ProbePanel::setCurve(const QString& title, const std::vector<double>& xs, const std::vector<double>& ys, const QString& xLabel,
                          const QString& yLabel) {
  m_plot->setVisible(!xs.empty());
  if (xs.empty()) return;
  m_plot->graph(0)->setData(QVector<double>(xs.begin(), xs.end()), QVector<double>(ys.begin(), ys.end()));
  m_plot->graph(0)->setName(title);
  m_plot->xAxis->setLabel(xLabel);
  m_plot->yAxis->setLabel(yLabel);
  m_plot->rescaleAxes();
  // Ranges that fit the quantity: fractions (accuracy, Sink_k) on [0, 1] whatever their spread; a
  // single point or a flat curve keeps a readable range instead of QCustomPlot's ±15 around it.
  const bool fraction = std::all_of(ys.begin(), ys.end(), [](double y) { return std::isfinite(y) && y >= 0.0 && y <= 1.0; });
  if (fraction) {
    m_plot->yAxis->setRange(0.0, 1.0);
  } else {
    const auto [yMin, yMax] = std::minmax_element(ys.begin(), ys.end());
    QCPRange y = *yMax - *yMin < 1e-9 ? QCPRange(*yMin - 1.0, *yMin + 1.0) : m_plot->yAxis->range();
    m_plot->yAxis->setRange(std::min(0.0, y.lower), y.upper);
  }
  const auto [xMin, xMax] = std::minmax_element(xs.begin(), xs.end());
  if (*xMax - *xMin < 1e-9) m_plot->xAxis->setRange(*xMin - 0.5, *xMin + 0.5);
  m_plot->replot();
}

QString ProbePanel::tableAsTsv() const {
  QString out = "layer\thead\tscore\n";
  for (int r = 0; r < m_table->rowCount(); ++r)
    out += m_table->item(r, 0)->text() + "\t" + m_table->item(r, 1)->text() + "\t" + m_table->item(r, 2)->text() + "\n";
  return out;
}

}  // namespace headlab::views
