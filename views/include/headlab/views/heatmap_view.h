// Attention heatmap: QCustomPlot colour map, no interpolation, token labels on both axes,
// hover tooltip (query, key, weight), linear or log scale, viridis, zoom and pan, PNG/PDF export.
#pragma once
#include <QWidget>

#include "headlab/views/view_data.h"

class QCustomPlot;
class QCPColorMap;
class QCPColorScale;
class QCPTextElement;
class QCPItemRect;
class QCPItemText;

namespace headlab::views {

class HeatmapView : public QWidget {
  Q_OBJECT
 public:
  explicit HeatmapView(QWidget* parent = nullptr);

  void setData(const HeatmapData& data);
  const HeatmapData& data() const { return m_data; }
  void setLogScale(bool log);
  // Small-multiple form: no axis labels, ticks or colour scale; only the title.
  void setCompact(bool compact);
  // Outlines query row `row` (-1 = none): the token selected in the strip.
  void setHighlightRow(int row);
  int highlightRow() const { return m_highlight; }
  bool logScale() const { return m_log; }
  // Zoom: the whole map (also on the context menu), or one query row with `context` rows around it
  // and the keys it sees.
  void resetZoom();
  void zoomToRow(int row, int context = 8);
  // The value the colour map holds at a cell (what the user sees, before log scaling).
  float cellValue(int row, int col) const;
  QString tooltipAt(int row, int col) const;
  // Writes PNG, PDF or SVG (by extension; SVG: one rect per cell, heatmap_export.h) at width × height
  // pixels/points, without the selection mark, with the metadata (PNG text "Description", PDF title,
  // SVG <metadata>). Returns false on failure.
  bool exportTo(const QString& path, int width, int height);
  // The matrix as CSV (with labels) or NPY (float32), by extension.
  bool exportValues(const QString& path) const;
  // What the figure shows, e.g. the model, prompt and edits, written into every export.
  void setExportMetadata(const QString& text) { m_metadata = text; }
  const QString& exportMetadata() const { return m_metadata; }
  QCustomPlot* plot() const { return m_plot; }

 signals:
  void cellClicked(int queryRow, int keyCol);

 protected:
  void contextMenuEvent(QContextMenuEvent* e) override;

 private:
  void rebuild();
  void showEmptyState(bool empty);
  QCustomPlot* m_plot;
  QCPColorMap* m_map = nullptr;
  QCPColorScale* m_scale = nullptr;
  QCPTextElement* m_title = nullptr;
  HeatmapData m_data;
  QString m_metadata;
  bool m_log = false;
  bool m_compact = false;
  int m_highlight = -1;
  int m_labelPasses = 0;  // corrective replots in a row after a resize (see TokenTicker)
  QCPItemRect* m_rowMarker = nullptr;
  QCPItemText* m_hint = nullptr;
};

// Writes any QCustomPlot as PNG or vector PDF, atomically (temporary file, then rename), with the
// metadata as the PNG's "Description" text or the PDF's title.
bool exportPlot(QCustomPlot* plot, const QString& path, int width, int height, const QString& metadata = {});

}  // namespace headlab::views
