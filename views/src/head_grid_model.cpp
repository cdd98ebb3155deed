#include "headlab/views/head_grid_model.h"

#include <QFont>
#include <algorithm>
#include <cmath>

namespace headlab::views {

QString ablationName(AblationKind k) {
  switch (k) {
    case AblationKind::None: return "none";
    case AblationKind::Zero: return "zero";
    case AblationKind::Mean: return "mean";
    case AblationKind::Uniform: return "uniform";
    case AblationKind::Act: return "act";
    case AblationKind::Pasta: return "pasta";
  }
  return "?";
}

HeadGridModel::HeadGridModel(QObject* parent) : QAbstractTableModel(parent) {}

void HeadGridModel::setShape(int layers, int heads) {
  beginResetModel();
  m_layers = layers, m_heads = heads;
  m_states.assign(static_cast<size_t>(layers) * heads, HeadState{});
  m_scores = HeadScores{layers, heads, std::vector<float>(static_cast<size_t>(layers) * heads, NAN), "", 0};
  m_min = 0, m_max = 1;
  endResetModel();
}

void HeadGridModel::setScores(const HeadScores& s) {
  if (s.layers != m_layers || s.heads != m_heads || s.values.size() != static_cast<size_t>(m_layers) * m_heads) return;
  m_scores = s;
  m_min = INFINITY, m_max = -INFINITY;
  for (float v : s.values)
    if (std::isfinite(v)) m_min = std::min(m_min, v), m_max = std::max(m_max, v);
  if (!std::isfinite(m_min)) m_min = 0, m_max = 1;
  if (m_max - m_min < 1e-12f) m_max = m_min + 1;
  emit dataChanged(index(0, 0), index(m_layers - 1, m_heads - 1));
}

const HeadState& HeadGridModel::state(int layer, int head) const {
  return m_states.at(static_cast<size_t>(layer) * m_heads + head);
}

void HeadGridModel::setStates(const std::vector<HeadState>& states) {
  if (states.size() != m_states.size()) return;
  m_states = states;
  emit dataChanged(index(0, 0), index(m_layers - 1, m_heads - 1));
}

bool HeadGridModel::toggleAblation(int layer, int head) {
  if (layer < 0 || layer >= m_layers || head < 0 || head >= m_heads) return false;
  HeadState& s = m_states[static_cast<size_t>(layer) * m_heads + head];
  const bool adding = s.ablation == AblationKind::None;
  if (adding && m_kind == AblationKind::Pasta && m_emphasis.isEmpty()) return false;
  s.ablation = adding ? m_kind : AblationKind::None;
  s.keys = adding && m_kind == AblationKind::Pasta ? m_emphasis : QVector<int>{};
  emit dataChanged(index(layer, head), index(layer, head));
  emit headStateChanged(layer, head, s);
  return true;
}

void HeadGridModel::setEmphasis(QVector<int> positions) {
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  m_emphasis = positions;
}

QString positionList(const QVector<int>& positions) {
  QStringList parts;
  for (int i = 0; i < positions.size();) {
    int j = i;
    while (j + 1 < positions.size() && positions[j + 1] == positions[j] + 1) ++j;
    parts << (j == i ? QString::number(positions[i]) : QString("%1-%2").arg(positions[i]).arg(positions[j]));
    i = j + 1;
  }
  return parts.join('+');
}

void HeadGridModel::setAlpha(int layer, int head, float alpha) {
  if (layer < 0 || layer >= m_layers || head < 0 || head >= m_heads) return;
  HeadState& s = m_states[static_cast<size_t>(layer) * m_heads + head];
  s.alpha = std::clamp(alpha, 0.0f, 4.0f);
  emit dataChanged(index(layer, head), index(layer, head));
  emit headStateChanged(layer, head, s);
}

void HeadGridModel::resetAll() {
  std::fill(m_states.begin(), m_states.end(), HeadState{});
  if (m_layers > 0) emit dataChanged(index(0, 0), index(m_layers - 1, m_heads - 1));
  emit allReset();
}

int HeadGridModel::editedCount() const {
  return static_cast<int>(std::count_if(m_states.begin(), m_states.end(), [](const HeadState& s) { return s.edited(); }));
}

int HeadGridModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : m_layers; }
int HeadGridModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : m_heads; }

float HeadGridModel::normalised(int layer, int head) const {
  float v = m_scores.values.at(static_cast<size_t>(layer) * m_heads + head);
  if (!std::isfinite(v)) return -1;
  return (v - m_min) / (m_max - m_min);
}

QColor HeadGridModel::colourFor(float t) {
  // Viridis at 5 stops, linearly interpolated: perceptually uniform and colour-blind safe.
  static const float stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  if (t < 0) return QColor(235, 235, 235);
  t = std::clamp(t, 0.0f, 1.0f) * 4.0f;
  int i = std::min(3, static_cast<int>(t));
  float f = t - i;
  auto mix = [&](int c) { return static_cast<int>(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])); };
  return QColor(mix(0), mix(1), mix(2));
}

QVariant HeadGridModel::data(const QModelIndex& idx, int role) const {
  if (!idx.isValid()) return {};
  const int l = idx.row(), h = idx.column();
  const HeadState& s = state(l, h);
  const float v = m_scores.values[static_cast<size_t>(l) * m_heads + h];
  switch (role) {
    case Qt::DisplayRole: {
      QString badge;
      if (s.ablation != AblationKind::None) badge = ablationName(s.ablation).left(1).toUpper();
      if (s.alpha != 1.0f) badge += QString("×%1").arg(s.alpha, 0, 'g', 2);
      return badge;
    }
    case Qt::FontRole: {
      // Badges such as "Z×2.5" fit a 12-head grid's narrow cells in a smaller font (issue #19: "×…").
      QFont f;
      f.setPointSizeF(std::max(6.0, f.pointSizeF() - 2.0));
      return s.edited() ? QVariant(f) : QVariant();
    }
    case Qt::BackgroundRole: return colourFor(normalised(l, h));
    case Qt::ForegroundRole: return normalised(l, h) > 0.6f ? QColor(Qt::black) : QColor(Qt::white);
    case Qt::ToolTipRole:
      return QString("L%1 H%2\n%3: %4\nablation: %5%6, α = %7")
          .arg(l).arg(h).arg(m_scores.name.isEmpty() ? "score" : m_scores.name)
          .arg(std::isfinite(v) ? QString::number(v, 'f', 4) : "—")
          .arg(ablationName(s.ablation))
          .arg(s.ablation == AblationKind::Pasta ? QString(" (emphasised positions %1)").arg(positionList(s.keys)) : QString())
          .arg(s.alpha);
    case Qt::UserRole: return v;
    default: return {};
  }
}

QVariant HeadGridModel::headerData(int section, Qt::Orientation o, int role) const {
  if (role == Qt::ToolTipRole) return o == Qt::Horizontal ? QString("head %1").arg(section) : QString("layer %1").arg(section);
  if (role != Qt::DisplayRole) return {};
  // Ten heads or more: bare numbers, so "H10", "H11" are not cut in a narrow dock (the tooltip says "head").
  if (o == Qt::Horizontal) return m_heads >= 10 ? QString::number(section) : QString("H%1").arg(section);
  return QString("L%1").arg(section);
}

}  // namespace headlab::views
