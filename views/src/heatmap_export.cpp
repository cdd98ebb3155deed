#include "headlab/views/heatmap_export.h"

#include <QRegularExpression>
#include <QSaveFile>
#include <QSysInfo>
#include <QTextStream>
#include <algorithm>
#include <cmath>

#include "colour_maps.h"

namespace headlab::views {

QCPRange heatmapRange(const HeatmapData& d, bool logScale) {
  if (d.scale == ColourScale::Diverging) {
    const double extent = std::max(std::abs(d.minValue), std::abs(d.maxValue));
    return {-extent, extent};
  }
  if (logScale) return {1e-4, std::max(1e-3f, d.maxValue)};
  return {d.minValue, d.maxValue};
}

QCPColorGradient heatmapGradient(const HeatmapData& d) { return d.scale == ColourScale::Diverging ? rdBu() : viridis(); }

QColor heatmapColour(const HeatmapData& d, float value, bool logScale) {
  if (!std::isfinite(value)) return QColor(235, 235, 235);
  const bool log = logScale && d.scale != ColourScale::Diverging;
  return QColor(heatmapGradient(d).color(log ? std::max(value, 1e-4f) : value, heatmapRange(d, logScale), log));
}

namespace {
QString xml(QString s) { return s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;"); }

bool commit(QSaveFile& f, const QByteArray& bytes) {
  if (f.write(bytes) != bytes.size()) {
    f.cancelWriting();
    return false;
  }
  return f.commit();
}

int longest(const QStringList& labels) {
  int n = 0;
  for (const QString& l : labels) n = std::max(n, static_cast<int>(l.size()));
  return n;
}
}  // namespace

bool writeHeatmapSvg(const HeatmapData& d, const QString& path, bool logScale, const QString& metadata) {
  if (d.empty()) return false;
  const int cell = std::clamp(560 / std::max(d.rows, d.cols), 3, 28);
  const int left = std::min(170, 24 + 7 * longest(d.rowLabels)), top = 48;
  const int w = d.cols * cell, h = d.rows * cell, barH = std::max(h, 140);
  const int bottom = std::min(150, 34 + 6 * longest(d.colLabels));
  const int width = left + w + 130, height = top + std::max(h, barH) + bottom;
  const int labelStep = std::max(1, static_cast<int>(std::ceil(12.0 / cell)));
  QString out;
  QTextStream s(&out);
  s << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << ' '
    << height << "\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"11\">\n"
    << "<metadata>" << xml(metadata) << "</metadata>\n<desc>" << xml(d.title) << "</desc>\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << left + w / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" << xml(d.title) << "</text>\n"
    << "<g shape-rendering=\"crispEdges\">\n";
  for (int r = 0; r < d.rows; ++r)
    for (int c = 0; c < d.cols; ++c) {
      const float v = d.at(r, c);
      s << "<rect class=\"cell" << (std::isfinite(v) ? "" : " nan") << "\" x=\"" << left + c * cell << "\" y=\"" << top + r * cell
        << "\" width=\"" << cell << "\" height=\"" << cell << "\" fill=\"" << heatmapColour(d, v, logScale).name() << "\"><title>"
        << xml(d.rowLabels.value(r)) << " / " << xml(d.colLabels.value(c)) << ": " << QString::number(v, 'g', 6) << "</title></rect>\n";
    }
  s << "</g>\n";
  for (int r = 0; r < d.rows; r += labelStep)
    s << "<text x=\"" << left - 4 << "\" y=\"" << top + r * cell + cell / 2 + 4 << "\" text-anchor=\"end\">" << xml(d.rowLabels.value(r)) << "</text>\n";
  for (int c = 0; c < d.cols; c += labelStep) {
    const int x = left + c * cell + cell / 2, y = top + h + 6;
    s << "<text transform=\"translate(" << x << ',' << y << ") rotate(60)\">" << xml(d.colLabels.value(c)) << "</text>\n";
  }
  s << "<text transform=\"translate(12," << top + h / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << xml(d.rowName) << "</text>\n"
    << "<text x=\"" << left + w / 2 << "\" y=\"" << height - 8 << "\" text-anchor=\"middle\">" << xml(d.colName) << "</text>\n";
  // The colour bar: 64 bands from the top (range maximum) down, ticks at 5 values.
  const QCPRange range = heatmapRange(d, logScale);
  const bool log = logScale && d.scale != ColourScale::Diverging;
  auto valueAt = [&](double t) { return log ? range.lower * std::pow(range.upper / range.lower, t) : range.lower + t * range.size(); };
  const int barX = left + w + 24;
  for (int i = 0; i < 64; ++i) {
    const double t = 1.0 - (i + 0.5) / 64.0;
    s << "<rect x=\"" << barX << "\" y=\"" << top + i * barH / 64.0 << "\" width=\"14\" height=\"" << barH / 64.0 + 0.5 << "\" fill=\""
      << heatmapColour(d, static_cast<float>(valueAt(t)), logScale).name() << "\"/>\n";
  }
  for (int i = 0; i <= 4; ++i) {
    const double t = i / 4.0;
    s << "<text x=\"" << barX + 18 << "\" y=\"" << top + (1.0 - t) * barH + 4 << "\">" << QString::number(valueAt(t), 'g', 3) << "</text>\n";
  }
  s << "<text transform=\"translate(" << barX + 78 << ',' << top + barH / 2 << ") rotate(90)\" text-anchor=\"middle\">"
    << xml(d.valueLabel + (log ? " (log)" : "")) << "</text>\n</svg>\n";
  QSaveFile f(path);
  return f.open(QIODevice::WriteOnly) && commit(f, out.toUtf8());
}

bool writeHeatmapCsv(const HeatmapData& d, const QString& path) {
  auto field = [](QString t) { return t.contains(QRegularExpression("[\",\\n\\r]")) ? "\"" + t.replace("\"", "\"\"") + "\"" : t; };
  QString out = field(d.rowName + "\\" + d.colName);
  for (int c = 0; c < d.cols; ++c) out += "," + field(d.colLabels.value(c, QString::number(c)));
  out += "\n";
  for (int r = 0; r < d.rows; ++r) {
    out += field(d.rowLabels.value(r, QString::number(r)));
    for (int c = 0; c < d.cols; ++c) out += "," + (std::isfinite(d.at(r, c)) ? QString::number(d.at(r, c), 'g', 9) : QString("nan"));
    out += "\n";
  }
  QSaveFile f(path);
  return f.open(QIODevice::WriteOnly) && commit(f, out.toUtf8());
}

bool writeHeatmapNpy(const HeatmapData& d, const QString& path) {
  static_assert(sizeof(float) == 4);
  if (QSysInfo::ByteOrder != QSysInfo::LittleEndian) return false;  // '<f4' below
  QByteArray header = QString("{'descr': '<f4', 'fortran_order': False, 'shape': (%1, %2), }").arg(d.rows).arg(d.cols).toLatin1();
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  QByteArray bytes("\x93NUMPY\x01\x00", 8);
  bytes += char(header.size() & 0xff);
  bytes += char(header.size() >> 8);
  bytes += header;
  bytes += QByteArray(reinterpret_cast<const char*>(d.values.data()), static_cast<int>(d.values.size() * sizeof(float)));
  QSaveFile f(path);
  return f.open(QIODevice::WriteOnly) && commit(f, bytes);
}

}  // namespace headlab::views
