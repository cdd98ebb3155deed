#include "headlab/views/token_strip.h"

#include <algorithm>

namespace headlab::views {

TokenStrip::TokenStrip(QWidget* parent) : QListWidget(parent) {
  setFlow(QListView::LeftToRight);
  setWrapping(true);
  setResizeMode(QListView::Adjust);
  setSpacing(3);
  setSelectionMode(QAbstractItemView::ExtendedSelection);
  setStyleSheet("QListWidget::item { border: 1px solid #9ab; border-radius: 4px; padding: 2px 4px; background: #eef4fa; }"
                "QListWidget::item:selected { background: #3b528b; color: white; }");
  connect(this, &QListWidget::currentRowChanged, this, [this](int row) {
    const int pos = positionOf(row);
    if (pos < 0) return;
    if (spanFolded() && row == m_spanBegin && m_spanPosition < 0) m_spanPosition = m_spanEnd - 1;
    emit positionSelected(spanFolded() && row == m_spanBegin ? m_spanPosition : pos);
  });
  connect(this, &QListWidget::itemSelectionChanged, this, [this] { emit selectionSpanChanged(selectedPositions()); });
  connect(this, &QListWidget::itemDoubleClicked, this, [this](QListWidgetItem* item) {
    if (!spanUsable()) return;
    const int pos = positionOf(row(item));
    const bool inSpan = spanFolded() ? row(item) == m_spanBegin : pos >= m_spanBegin && pos < m_spanEnd;
    if (!inSpan) return;
    if (!spanFolded()) m_spanPosition = pos;
    setSpanFolded(!spanFolded());
  });
}

QString TokenStrip::chipText(const QString& piece) {
  QString t = piece;
  t.replace(' ', QChar(0x00B7)).replace('\n', QChar(0x23CE));
  return t.isEmpty() ? QString("∅") : t;
}

void TokenStrip::setTokens(const QStringList& pieces, const QVector<int>& ids) {
  m_pieces = pieces;
  m_ids = ids;
  m_spanPosition = -1;
  rebuild(-1);  // a new prompt starts with nothing selected
}

void TokenStrip::setFoldableSpan(int begin, int end, const QString& label, int foldAbove) {
  const int keep = selectedPosition();  // in the current rows' terms, before the span changes
  const bool changed = begin != m_spanBegin || end != m_spanEnd;
  m_spanBegin = begin, m_spanEnd = end, m_spanLabel = label;
  if (changed) {
    m_folded = end - begin > foldAbove;
    m_spanPosition = -1;
  }
  rebuild(keep);
}

void TokenStrip::setSpanFolded(bool folded) {
  const int keep = selectedPosition();
  m_folded = folded;
  rebuild(keep);
}

int TokenStrip::rowOf(int pos) const {
  if (!spanFolded() || pos < m_spanBegin) return pos;
  if (pos < m_spanEnd) return m_spanBegin;
  return pos - (m_spanEnd - m_spanBegin) + 1;
}

int TokenStrip::positionOf(int row) const {
  if (row < 0) return -1;
  if (!spanFolded() || row < m_spanBegin) return row;
  if (row == m_spanBegin) return m_spanBegin;
  return row + (m_spanEnd - m_spanBegin) - 1;
}

int TokenStrip::selectedPosition() const {
  const int row = currentRow();
  if (spanFolded() && row == m_spanBegin) return m_spanPosition >= 0 ? m_spanPosition : m_spanEnd - 1;
  return positionOf(row);
}

QVector<int> TokenStrip::selectedPositions() const {
  QVector<int> out;
  for (const QListWidgetItem* item : selectedItems()) {
    const int r = row(item);
    if (spanFolded() && r == m_spanBegin) {
      for (int p = m_spanBegin; p < m_spanEnd; ++p) out << p;
    } else if (const int p = positionOf(r); p >= 0) {
      out << p;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void TokenStrip::selectPosition(int pos) {
  if (pos < 0 || pos >= m_pieces.size()) return;
  if (spanFolded() && pos >= m_spanBegin && pos < m_spanEnd) m_spanPosition = pos;
  if (rowOf(pos) == currentRow()) {
    emit positionSelected(pos);  // the folded chip already selected, standing for another position
    return;
  }
  setCurrentRow(rowOf(pos));
}

void TokenStrip::rebuild(int keep) {
  QSignalBlocker block(this);
  clear();
  for (int i = 0; i < m_pieces.size(); ++i) {
    if (spanFolded() && i >= m_spanBegin && i < m_spanEnd) {
      if (i > m_spanBegin) continue;
      auto* item = new QListWidgetItem(m_spanLabel, this);
      item->setToolTip(QString("positions %1–%2 (%3 tokens)\ndouble-click to show each")
                           .arg(m_spanBegin).arg(m_spanEnd - 1).arg(m_spanEnd - m_spanBegin));
      continue;
    }
    auto* item = new QListWidgetItem(chipText(m_pieces[i]), this);
    item->setToolTip(QString("position %1\nid %2\n'%3'").arg(i).arg(i < m_ids.size() ? m_ids[i] : -1).arg(m_pieces[i]));
  }
  if (keep >= 0 && keep < m_pieces.size()) setCurrentRow(rowOf(keep));
}

}  // namespace headlab::views
