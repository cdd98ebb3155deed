#include "headlab/views/heatmap_view.h"

#include "colour_maps.h"
#include "headlab/views/heatmap_export.h"

#include <qcustomplot.h>

#include <QContextMenuEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QMessageBox>
#include <QSaveFile>
#include <QToolTip>
#include <QVBoxLayout>
#include <cmath>
#include <iterator>

namespace headlab::views {

namespace {
// Token labels on an axis, as many as fit: every k-th cell of the visible range, k chosen from the
// axis's current pixel length and the label font, so a 600-token image prompt stays legible and
// zooming in brings every label back. Recomputed on each replot (resize, zoom, export).
class TokenTicker : public QCPAxisTicker {
 public:
  TokenTicker(QCPAxis* axis, QStringList labels, int cells) : m_axis(axis), m_labels(std::move(labels)), m_cells(cells) {}

  void generate(const QCPRange& range, const QLocale&, QChar, int, QVector<double>& ticks, QVector<double>* subTicks,
                QVector<QString>* tickLabels) override {
    const int step = labelStep(range);
    const int first = std::max(0, static_cast<int>(std::ceil(range.lower / step)) * step);
    const int last = std::min(m_cells - 1, static_cast<int>(std::floor(range.upper)));
    ticks.clear();
    for (int i = first; i <= last; i += step) ticks.append(i);
    if (subTicks) subTicks->clear();
    if (tickLabels) {
      tickLabels->clear();
      for (double t : ticks) {
        const int i = static_cast<int>(t);
        tickLabels->append(i < m_labels.size() ? m_labels[i] : QString::number(i));
      }
    }
  }

  // True when the axis is now more than 10% longer or shorter than when the labels were chosen
  // (ticks are made before the layout pass, so the first replot after a resize uses the old size).
  bool stale() const { return std::abs(axisPixels() - m_pixelsUsed) > 0.1 * std::max(1.0, m_pixelsUsed); }

 private:
  double axisPixels() const {
    const QRect rect = m_axis->axisRect()->rect();
    return m_axis->orientation() == Qt::Horizontal ? rect.width() : rect.height();
  }
  int labelStep(const QCPRange& range) {
    const double pixels = m_pixelsUsed = axisPixels();
    const double perCell = pixels / std::max(1.0, range.size());
    // Rotated labels (the key axis) need about the same spacing as stacked ones: their height.
    const double minSpacing = 1.15 * QFontMetrics(m_axis->tickLabelFont()).height();
    return perCell <= 0 ? 1 : std::max(1, static_cast<int>(std::ceil(minSpacing / perCell)));
  }

  QCPAxis* m_axis;  // owns this ticker
  QStringList m_labels;
  int m_cells;
  double m_pixelsUsed = 0;
};
}  // namespace

HeatmapView::HeatmapView(QWidget* parent) : QWidget(parent), m_plot(new QCustomPlot(this)) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(m_plot);
  m_plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  m_plot->setMouseTracking(true);
  m_map = new QCPColorMap(m_plot->xAxis, m_plot->yAxis);
  m_map->setInterpolate(false);
  m_map->setTightBoundary(true);
  m_scale = new QCPColorScale(m_plot);
  m_plot->plotLayout()->addElement(0, 1, m_scale);
  m_map->setColorScale(m_scale);
  m_map->setGradient(viridis());
  m_plot->plotLayout()->insertRow(0);
  m_title = new QCPTextElement(m_plot, "", QFont("sans", 10, QFont::Bold));
  m_plot->plotLayout()->addElement(0, 0, m_title);
  m_plot->yAxis->setRangeReversed(true);
  m_rowMarker = new QCPItemRect(m_plot);
  m_rowMarker->setPen(QPen(QColor(230, 80, 30), 2));
  m_rowMarker->setBrush(Qt::NoBrush);
  m_rowMarker->setVisible(false);  // query 0 at the top, as attention maps are read
  m_plot->xAxis->setLabel("key");
  m_plot->yAxis->setLabel("query");
  // Until there is something to show: a hint instead of an empty purple square.
  m_hint = new QCPItemText(m_plot);
  m_hint->position->setType(QCPItemPosition::ptAxisRectRatio);
  m_hint->position->setCoords(0.5, 0.5);
  m_hint->setText(tr("Nothing to show yet: open a model and run a prompt"));
  m_hint->setColor(QColor(110, 110, 110));
  showEmptyState(true);
  connect(m_plot, &QCustomPlot::mouseMove, this, [this](QMouseEvent* e) {
    if (m_data.empty()) return;
    int c = static_cast<int>(std::lround(m_plot->xAxis->pixelToCoord(e->pos().x())));
    int r = static_cast<int>(std::lround(m_plot->yAxis->pixelToCoord(e->pos().y())));
    if (r >= 0 && r < m_data.rows && c >= 0 && c < m_data.cols)
      QToolTip::showText(e->globalPosition().toPoint(), tooltipAt(r, c), m_plot);
  });
  connect(m_plot, &QCustomPlot::afterLayout, this, [this] {
    // Labels chosen for the previous size: choose again once (a bounded correction, since label
    // sizes feed back into the layout).
    bool stale = false;
    for (QCPAxis* axis : {m_plot->xAxis, m_plot->yAxis})
      if (auto* t = dynamic_cast<TokenTicker*>(axis->ticker().data())) stale = stale || t->stale();
    if (stale && m_labelPasses++ < 2) m_plot->replot(QCustomPlot::rpQueuedReplot);
    if (!stale) m_labelPasses = 0;
  });
  connect(m_plot, &QCustomPlot::mousePress, this, [this](QMouseEvent* e) {
    if (m_data.empty()) return;
    int c = static_cast<int>(std::lround(m_plot->xAxis->pixelToCoord(e->pos().x())));
    int r = static_cast<int>(std::lround(m_plot->yAxis->pixelToCoord(e->pos().y())));
    if (r >= 0 && r < m_data.rows && c >= 0 && c < m_data.cols) emit cellClicked(r, c);
  });
}

void HeatmapView::setData(const HeatmapData& data) {
  m_data = data;
  rebuild();
}

void HeatmapView::setHighlightRow(int row) {
  m_highlight = row;
  const bool show = row >= 0 && row < m_data.rows;
  m_rowMarker->setVisible(show);
  if (show) {
    m_rowMarker->topLeft->setCoords(-0.5, row - 0.5);
    m_rowMarker->bottomRight->setCoords(m_data.cols - 0.5, row + 0.5);
  }
  m_plot->replot();
}

void HeatmapView::setCompact(bool compact) {
  m_compact = compact;
  for (QCPAxis* axis : {m_plot->xAxis, m_plot->yAxis}) {
    axis->setTickLabels(!compact);
    axis->setTicks(!compact);
    axis->setLabel(compact ? QString() : axis == m_plot->xAxis ? "key" : "query");
  }
  m_scale->setVisible(compact ? false : true);
  if (compact) {
    m_plot->plotLayout()->take(m_scale);
    m_plot->plotLayout()->simplify();
    m_title->setFont(QFont("sans", 7));
    m_plot->axisRect()->setAutoMargins(QCP::msNone);
    m_plot->axisRect()->setMargins(QMargins(2, 2, 2, 2));
  }
  m_plot->setInteractions(compact ? QCP::Interactions() : QCP::iRangeDrag | QCP::iRangeZoom);
  m_plot->replot();
}

void HeatmapView::setLogScale(bool log) {
  m_log = log;
  rebuild();
}

float HeatmapView::cellValue(int row, int col) const {
  if (row < 0 || row >= m_data.rows || col < 0 || col >= m_data.cols) return NAN;
  return static_cast<float>(m_map->data()->cell(col, row));
}

QString HeatmapView::tooltipAt(int r, int c) const {
  auto label = [](const QStringList& l, int i) { return i < l.size() ? l[i] : QString::number(i); };
  const int cell = r * m_data.cols + c;
  return QString("%1 %2 '%3'\n%4 %5 '%6'\n%7 %8%9")
      .arg(m_data.rowName).arg(r).arg(label(m_data.rowLabels, r))
      .arg(m_data.colName).arg(c).arg(label(m_data.colLabels, c))
      .arg(m_data.valueLabel).arg(m_data.at(r, c), 0, 'f', 4)
      .arg(cell < m_data.cellTexts.size() ? "\n" + m_data.cellTexts[cell] : QString());
}

void HeatmapView::showEmptyState(bool empty) {
  m_hint->setVisible(empty);
  m_map->setVisible(!empty);
  m_scale->setVisible(!empty && !m_compact);
  for (QCPAxis* axis : {m_plot->xAxis, m_plot->yAxis}) axis->setVisible(!empty);
}

void HeatmapView::rebuild() {
  showEmptyState(m_data.empty());
  m_title->setText(m_data.title);
  if (m_plot->xAxis->tickLabels()) {  // not in compact form
    m_plot->xAxis->setLabel(m_data.colName);
    m_plot->yAxis->setLabel(m_data.rowName);
  }
  m_map->data()->setSize(std::max(1, m_data.cols), std::max(1, m_data.rows));
  m_map->data()->setRange(QCPRange(0, std::max(0, m_data.cols - 1)), QCPRange(0, std::max(0, m_data.rows - 1)));
  for (int r = 0; r < m_data.rows; ++r)
    for (int c = 0; c < m_data.cols; ++c) m_map->data()->setCell(c, r, m_data.at(r, c));
  // A diverging map is linear and centred on 0: its range is symmetric, so white means 0.
  const bool diverging = m_data.scale == ColourScale::Diverging, log = m_log && !diverging;
  m_map->setGradient(heatmapGradient(m_data));
  m_map->setDataScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
  m_map->setDataRange(heatmapRange(m_data, m_log));
  m_scale->axis()->setLabel(log ? m_data.valueLabel + " (log)" : m_data.valueLabel);
  // A log bar gets decade ticks (1e-4 … 1): the linear ticker crammed its ticks at the top.
  const bool logTicker = !qSharedPointerDynamicCast<QCPAxisTickerLog>(m_scale->axis()->ticker()).isNull();
  if (log != logTicker)
    m_scale->axis()->setTicker(log ? QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog) : QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
  m_scale->axis()->setNumberFormat(log ? "eb" : "gb");
  m_scale->axis()->setNumberPrecision(log ? 0 : 2);
  m_plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>(new TokenTicker(m_plot->xAxis, m_data.colLabels, m_data.cols)));
  m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new TokenTicker(m_plot->yAxis, m_data.rowLabels, m_data.rows)));
  m_plot->xAxis->setTickLabelRotation(60);
  m_plot->xAxis->setRange(-0.5, std::max(0.5, m_data.cols - 0.5));
  m_plot->yAxis->setRange(-0.5, std::max(0.5, m_data.rows - 0.5));
  setHighlightRow(m_highlight);
}

bool HeatmapView::exportTo(const QString& path, int width, int height) {
  if (QFileInfo(path).suffix().compare("svg", Qt::CaseInsensitive) == 0) return writeHeatmapSvg(m_data, path, m_log, m_metadata);
  // Figures carry no selection marks; one layout pass at the export size first, so the token labels
  // are chosen for the figure's axes rather than the window's.
  const int highlight = m_highlight;
  setHighlightRow(-1);
  m_plot->toPixmap(width, height);
  const bool ok = exportPlot(m_plot, path, width, height, m_metadata);
  setHighlightRow(highlight);
  return ok;
}

bool HeatmapView::exportValues(const QString& path) const {
  return QFileInfo(path).suffix().compare("npy", Qt::CaseInsensitive) == 0 ? writeHeatmapNpy(m_data, path) : writeHeatmapCsv(m_data, path);
}

void HeatmapView::resetZoom() {
  m_plot->xAxis->setRange(-0.5, std::max(0.5, m_data.cols - 0.5));
  m_plot->yAxis->setRange(-0.5, std::max(0.5, m_data.rows - 0.5));
  m_plot->replot();
}

void HeatmapView::zoomToRow(int row, int context) {
  if (row < 0 || row >= m_data.rows) return;
  // The row with `context` rows around it, and the keys it can see (up to its own position in a
  // square causal map), so the cells are large enough to read.
  m_plot->yAxis->setRange(std::max(-0.5, row - context - 0.5), std::min(m_data.rows - 0.5, row + context + 0.5));
  const int lastKey = m_data.rows == m_data.cols ? row : m_data.cols - 1;
  m_plot->xAxis->setRange(-0.5, std::max(0.5, lastKey + 0.5));
  m_plot->replot();
}

void HeatmapView::contextMenuEvent(QContextMenuEvent* e) {
  if (m_data.empty()) return;
  QMenu menu(this);
  menu.addAction(tr("Fit the whole map (reset zoom)"), this, &HeatmapView::resetZoom);
  if (m_highlight >= 0) menu.addAction(tr("Zoom to the selected query (row %1)").arg(m_highlight), this, [this] { zoomToRow(m_highlight); });
  menu.addSeparator();
  menu.addAction(tr("Export figure (PNG, PDF, SVG)…"), this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export figure"), "heatmap.svg", tr("SVG (*.svg);;PNG (*.png);;PDF (*.pdf)"));
    if (!path.isEmpty() && !exportTo(path, 1200, 900)) QMessageBox::warning(this, tr("Export figure"), tr("cannot write %1").arg(path));
  });
  menu.addAction(tr("Export values (CSV, NPY)…"), this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export values"), "heatmap.csv", tr("CSV (*.csv);;NumPy (*.npy)"));
    if (!path.isEmpty() && !exportValues(path)) QMessageBox::warning(this, tr("Export values"), tr("cannot write %1").arg(path));
  });
  menu.exec(e->globalPos());
}

bool exportPlot(QCustomPlot* plot, const QString& path, int width, int height, const QString& metadata) {
  // Render to a temporary file beside the target, then rename: a failed export leaves nothing.
  QFileInfo info(path);
  QString tmp = info.dir().filePath("." + info.fileName() + ".part");
  bool ok;
  if (info.suffix().compare("pdf", Qt::CaseInsensitive) == 0) {
    ok = plot->savePdf(tmp, width, height, QCP::epAllowCosmetic, "HeadLab", metadata);
  } else {
    QImage image = plot->toPixmap(width, height).toImage();
    if (!metadata.isEmpty()) image.setText("Description", metadata);
    image.setText("Software", "HeadLab");
    ok = image.save(tmp, "PNG");
  }
  if (!ok) {
    QFile::remove(tmp);
    return false;
  }
  QFile::remove(path);
  return QFile::rename(tmp, path);
}

}  // namespace headlab::views
