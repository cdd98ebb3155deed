#include "report.h"

#include <QFont>
#include <QImage>
#include <QPainter>
#include <QSaveFile>
#include <algorithm>
#include <cmath>

namespace headlab::cli {

namespace {
QColor viridis(double t) {
  static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  if (!std::isfinite(t)) return QColor(235, 235, 235);
  t = std::clamp(t, 0.0, 1.0) * 4.0;
  int i = std::min(3, static_cast<int>(t));
  double f = t - i;
  auto mix = [&](int c) { return static_cast<int>(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])); };
  return QColor(mix(0), mix(1), mix(2));
}

bool save(const QImage& img, const std::string& path) {
  QSaveFile f(QString::fromStdString(path));  // atomic: temporary file, then rename
  if (!f.open(QIODevice::WriteOnly)) return false;
  if (!img.save(&f, "PNG")) return false;
  return f.commit();
}
}  // namespace

bool writeHeatmapPng(const std::string& path, const std::string& title, int rows, int cols, const std::vector<double>& values,
                     const std::vector<std::string>& rowLabels, const std::vector<std::string>& colLabels) {
  const int cell = std::max(14, std::min(48, 640 / std::max(1, std::max(rows, cols))));
  const int left = 90, top = 40, bottom = 90, right = 110;
  QImage img(left + cols * cell + right, top + rows * cell + bottom, QImage::Format_RGB32);
  img.fill(Qt::white);
  QPainter p(&img);
  p.setFont(QFont("sans", 9));
  double lo = INFINITY, hi = -INFINITY;
  for (double v : values)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-12) hi = lo + 1;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) p.fillRect(left + c * cell, top + r * cell, cell, cell, viridis((values[r * cols + c] - lo) / (hi - lo)));
  p.setPen(Qt::black);
  p.drawText(QRect(0, 5, img.width(), 25), Qt::AlignCenter, QString::fromStdString(title));
  for (int r = 0; r < rows && r < static_cast<int>(rowLabels.size()); ++r)
    p.drawText(QRect(0, top + r * cell, left - 4, cell), Qt::AlignRight | Qt::AlignVCenter, QString::fromStdString(rowLabels[r]));
  for (int c = 0; c < cols && c < static_cast<int>(colLabels.size()); ++c) {
    p.save();
    p.translate(left + c * cell + cell / 2 + 4, top + rows * cell + 4);
    p.rotate(60);
    p.drawText(0, 0, QString::fromStdString(colLabels[c]));
    p.restore();
  }
  // Colour bar with its range.
  const int bx = left + cols * cell + 20;
  for (int y = 0; y < rows * cell; ++y) p.fillRect(bx, top + y, 16, 1, viridis(1.0 - static_cast<double>(y) / std::max(1, rows * cell - 1)));
  p.drawText(bx + 20, top + 10, QString::number(hi, 'g', 3));
  p.drawText(bx + 20, top + rows * cell, QString::number(lo, 'g', 3));
  p.end();
  return save(img, path);
}

bool writeLinePng(const std::string& path, const std::string& title, const std::vector<double>& xs, const std::vector<double>& ys,
                  const std::string& xLabel, const std::string& yLabel) {
  const int W = 640, H = 360, l = 70, r = 20, t = 40, b = 50;
  QImage img(W, H, QImage::Format_RGB32);
  img.fill(Qt::white);
  QPainter p(&img);
  p.setRenderHint(QPainter::Antialiasing);
  p.setFont(QFont("sans", 9));
  if (xs.empty() || xs.size() != ys.size()) return false;
  double x0 = *std::min_element(xs.begin(), xs.end()), x1 = *std::max_element(xs.begin(), xs.end());
  double y0 = std::min(0.0, *std::min_element(ys.begin(), ys.end())), y1 = *std::max_element(ys.begin(), ys.end());
  if (x1 - x0 < 1e-12) x1 = x0 + 1;
  if (y1 - y0 < 1e-12) y1 = y0 + 1;
  auto X = [&](double x) { return l + (x - x0) / (x1 - x0) * (W - l - r); };
  auto Y = [&](double y) { return H - b - (y - y0) / (y1 - y0) * (H - t - b); };
  p.setPen(Qt::black);
  p.drawLine(l, H - b, W - r, H - b);
  p.drawLine(l, t, l, H - b);
  p.drawText(QRect(0, 5, W, 25), Qt::AlignCenter, QString::fromStdString(title));
  p.drawText(QRect(l, H - 25, W - l - r, 20), Qt::AlignCenter, QString::fromStdString(xLabel));
  p.drawText(5, t - 8, QString::fromStdString(yLabel));
  p.drawText(QRect(0, t - 6, l - 6, 14), Qt::AlignRight, QString::number(y1, 'g', 3));
  p.drawText(QRect(0, H - b - 8, l - 6, 14), Qt::AlignRight, QString::number(y0, 'g', 3));
  p.drawText(QRect(l - 20, H - b + 4, 40, 14), Qt::AlignCenter, QString::number(x0, 'g', 4));
  p.drawText(QRect(W - r - 40, H - b + 4, 40, 14), Qt::AlignCenter, QString::number(x1, 'g', 4));
  p.setPen(QPen(QColor(59, 82, 139), 2));
  for (size_t i = 1; i < xs.size(); ++i) p.drawLine(QPointF(X(xs[i - 1]), Y(ys[i - 1])), QPointF(X(xs[i]), Y(ys[i])));
  p.end();
  return save(img, path);
}

}  // namespace headlab::cli

namespace headlab::cli {

bool writeAttentionOverlayPng(const std::string& path, const std::string& title, const std::vector<uint8_t>& rgb, int width, int height,
                              const std::vector<double>& map, int side) {
  if (width <= 0 || height <= 0 || static_cast<int>(rgb.size()) != width * height * 3 || side <= 0 ||
      static_cast<int>(map.size()) != side * side)
    return false;
  QImage image(rgb.data(), width, height, width * 3, QImage::Format_RGB888);
  const int panel = 256, gap = 24, top = 36;
  QImage out(2 * panel + 3 * gap, panel + top + gap, QImage::Format_RGB32);
  out.fill(Qt::white);
  QPainter p(&out);
  p.setFont(QFont("sans", 9));
  p.drawText(QRect(0, 6, out.width(), 24), Qt::AlignCenter, QString::fromStdString(title));
  const QImage scaled = image.scaled(panel, panel, Qt::IgnoreAspectRatio, Qt::FastTransformation);
  p.drawImage(gap, top, scaled);
  p.drawImage(2 * gap + panel, top, scaled);
  const double hi = *std::max_element(map.begin(), map.end()), lo = *std::min_element(map.begin(), map.end());
  const double cell = static_cast<double>(panel) / side;
  for (int r = 0; r < side; ++r)
    for (int c = 0; c < side; ++c) {
      QColor colour = viridis(hi - lo < 1e-12 ? 0.0 : (map[r * side + c] - lo) / (hi - lo));
      colour.setAlpha(150);
      p.fillRect(QRectF(2 * gap + panel + c * cell, top + r * cell, cell, cell), colour);
    }
  p.end();
  return save(out, path);
}

}  // namespace headlab::cli
