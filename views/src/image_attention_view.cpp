#include "headlab/views/image_attention_view.h"

#include <numeric>

#include <QContextMenuEvent>
#include <QFileDialog>
#include <QMenu>
#include <QMessageBox>
#include <QMouseEvent>
#include <QPainter>
#include <QSaveFile>
#include <QToolTip>
#include <algorithm>
#include <cmath>

#include "headlab/views/head_grid_model.h"

namespace headlab::views {

namespace {
constexpr int kCaptionHeight = 34;
}

ImageAttentionView::ImageAttentionView(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setMinimumSize(140, 140);  // small enough for the Image dock at 1280x760 (the image shrinks, the caption stays)
}

void ImageAttentionView::setImage(const QImage& image) {
  m_data = ImageAttention{image, 0, {}, {}};
  update();
}

void ImageAttentionView::setAttention(const ImageAttention& a) {
  m_data = a;
  if (a.side <= 0 || a.values.size() != static_cast<size_t>(a.side) * a.side) m_data.side = 0, m_data.values.clear();
  update();
}

void ImageAttentionView::clearAttention() {
  m_data.side = 0, m_data.values.clear(), m_data.caption.clear();
  update();
}

void ImageAttentionView::setOverlayOpacity(float opacity) {
  m_opacity = std::clamp(opacity, 0.0f, 1.0f);
  update();
}

QRect ImageAttentionView::imageRect(const QRect& area) const {
  const int side = std::max(1, std::min(area.width(), area.height() - kCaptionHeight));
  return {area.left() + (area.width() - side) / 2, area.top(), side, side};
}

int ImageAttentionView::patchAt(const QPoint& pt) const {
  if (!hasOverlay()) return -1;
  const QRect r = imageRect(rect());
  if (!r.contains(pt)) return -1;
  const int col = std::min(m_data.side - 1, (pt.x() - r.left()) * m_data.side / r.width());
  const int row = std::min(m_data.side - 1, (pt.y() - r.top()) * m_data.side / r.height());
  return row * m_data.side + col;
}

void ImageAttentionView::paintTo(QPainter& p, const QRect& area) const {
  p.fillRect(area, palette().window());
  if (m_data.image.isNull()) {
    p.setPen(QColor(120, 120, 120));
    p.drawText(area, Qt::AlignCenter | Qt::TextWordWrap, tr("No image. Load one (Image ▸ Load image…, or drop a PNG/JPEG here) for a vision-language model."));
    return;
  }
  const QRect r = imageRect(area);
  // Nearest-neighbour scaling: a 16-pixel demo image stays crisp instead of blurred.
  p.setRenderHint(QPainter::SmoothPixmapTransform, m_data.image.width() >= r.width() / 2);
  // Under an overlay the image is drawn in grey: viridis over the image's own colours would mix into
  // colours the legend does not have (red + viridis = orange).
  p.drawImage(r, hasOverlay() ? m_data.image.convertToFormat(QImage::Format_Grayscale8) : m_data.image);
  if (hasOverlay()) {
    const int n = m_data.side;
    const float hi = *std::max_element(m_data.values.begin(), m_data.values.end());
    // Colours say where on the image the row attends (relative to its strongest patch); opacity says
    // how much of the row is on the image at all, so a head that ignores the image paints nothing.
    const float mass = std::clamp(std::accumulate(m_data.values.begin(), m_data.values.end(), 0.0f), 0.0f, 1.0f);
    for (int row = 0; row < n; ++row)
      for (int col = 0; col < n; ++col) {
        const float v = m_data.values[static_cast<size_t>(row) * n + col];
        const float t = hi > 0 ? std::clamp(v / hi, 0.0f, 1.0f) : 0.0f;
        QColor c = HeadGridModel::colourFor(t);
        c.setAlphaF(m_opacity * mass * (0.15f + 0.85f * t));
        const QRect cell(r.left() + col * r.width() / n, r.top() + row * r.height() / n, (col + 1) * r.width() / n - col * r.width() / n,
                         (row + 1) * r.height() / n - row * r.height() / n);
        p.fillRect(cell, c);
      }
    p.setPen(QPen(QColor(255, 255, 255, 90), 1));
    for (int i = 1; i < n; ++i) {
      p.drawLine(r.left() + i * r.width() / n, r.top(), r.left() + i * r.width() / n, r.bottom());
      p.drawLine(r.left(), r.top() + i * r.height() / n, r.right(), r.top() + i * r.height() / n);
    }
    // Scale: the colour of the strongest patch and its weight.
    const QRect bar(area.left() + 4, r.bottom() + 5, std::min(100, area.width() / 4), 8);
    QLinearGradient g(bar.topLeft(), bar.topRight());
    for (int i = 0; i <= 4; ++i) g.setColorAt(i / 4.0, HeadGridModel::colourFor(i / 4.0f));
    p.fillRect(bar, g);
    p.setPen(palette().text().color());
    // Both lines fit the width (elided, the whole text in the hover and the caption's owner).
    const QString legend = tr("0 … %1 · %2% of the row on the image").arg(hi, 0, 'g', 3).arg(100 * mass, 0, 'f', 0);
    p.drawText(bar.right() + 6, bar.bottom() + 1, p.fontMetrics().elidedText(legend, Qt::ElideRight, area.right() - bar.right() - 8));
  }
  p.setPen(palette().text().color());
  p.drawText(QRect(area.left(), r.bottom() + 15, area.width(), kCaptionHeight - 16), Qt::AlignLeft | Qt::AlignVCenter | Qt::TextSingleLine,
             p.fontMetrics().elidedText(m_data.caption, Qt::ElideRight, area.width()));
}

void ImageAttentionView::paintEvent(QPaintEvent*) {
  QPainter p(this);
  paintTo(p, rect());
}

void ImageAttentionView::contextMenuEvent(QContextMenuEvent* e) {
  if (m_data.empty()) return;
  QMenu menu(this);
  menu.addAction(tr("Export figure (PNG)…"), this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export overlay"), "overlay.png", tr("PNG (*.png)"));
    if (!path.isEmpty() && !exportTo(path, 800)) QMessageBox::warning(this, tr("Export overlay"), tr("cannot write %1").arg(path));
  });
  menu.exec(e->globalPos());
}

void ImageAttentionView::mouseMoveEvent(QMouseEvent* e) {
  const int patch = patchAt(e->position().toPoint());
  if (patch < 0) {
    QToolTip::hideText();
    return;
  }
  const float v = m_data.values[static_cast<size_t>(patch)];
  QToolTip::showText(e->globalPosition().toPoint(),
                     tr("patch (%1, %2): %3").arg(patch / m_data.side).arg(patch % m_data.side).arg(v, 0, 'f', 4), this);
  emit patchHovered(patch, v);
}

bool ImageAttentionView::exportTo(const QString& path, int width) {
  if (width <= 0) return false;
  QImage out(width, width + kCaptionHeight, QImage::Format_ARGB32);
  {
    QPainter p(&out);
    paintTo(p, out.rect());
  }
  QSaveFile f(path);
  if (!f.open(QIODevice::WriteOnly)) return false;
  if (!out.save(&f, "PNG")) {
    f.cancelWriting();
    return false;
  }
  return f.commit();
}

}  // namespace headlab::views
