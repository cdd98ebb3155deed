// The image a vision-language prompt holds (in grey under an overlay), with attention over its
// patch grid drawn on top: each patch cell tinted by its weight relative to the strongest patch
// (viridis), with an opacity that scales with the share of the row on the image; grid lines, a
// caption and a scale. Hover shows the patch's (row, col) and weight. No torch: plain values.
#pragma once
#include <QImage>
#include <QWidget>
#include <vector>

namespace headlab::views {

struct ImageAttention {
  QImage image;               // what the model sees (the square crop), any resolution
  int side = 0;               // patches per side: values are [side, side], row-major
  std::vector<float> values;  // attention from the query position to each image patch
  QString caption;            // "L0 H3 · query 'colour' · 0.62 of the row on the image"
  bool empty() const { return image.isNull(); }
};

class ImageAttentionView : public QWidget {
  Q_OBJECT
 public:
  explicit ImageAttentionView(QWidget* parent = nullptr);

  // The image alone (no overlay until setAttention).
  void setImage(const QImage& image);
  // Throws nothing: values of the wrong size are ignored and the overlay is cleared.
  void setAttention(const ImageAttention& attention);
  void clearAttention();
  const ImageAttention& attention() const { return m_data; }
  bool hasOverlay() const { return m_data.side > 0 && !m_data.values.empty(); }
  void setOverlayOpacity(float opacity);  // 0..1, the tint of the strongest patch
  // The patch under a widget point, as row * side + col, or -1.
  int patchAt(const QPoint& p) const;
  // Renders what the widget shows to PNG (width x width + caption), atomically. False on failure.
  bool exportTo(const QString& path, int width);
  QSize sizeHint() const override { return {320, 360}; }

 signals:
  void patchHovered(int patch, float value);

 protected:
  void paintEvent(QPaintEvent*) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void contextMenuEvent(QContextMenuEvent* e) override;

 private:
  void paintTo(QPainter& p, const QRect& area) const;
  QRect imageRect(const QRect& area) const;
  ImageAttention m_data;
  float m_opacity = 0.7f;
};

}  // namespace headlab::views
