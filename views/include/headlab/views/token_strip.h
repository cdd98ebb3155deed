// Tokens as chips in reading order; hover shows id and string, a click selects the query position.
// Shift-click and Ctrl-click extend the selection to a span or a set (PASTA's emphasised tokens);
// the chip clicked last stays the query position.
// A long span (an image's hundreds of patch positions) can be folded into one chip; double-clicking
// that chip unfolds it, and double-clicking any of its positions folds it again.
#pragma once
#include <QListWidget>

namespace headlab::views {

class TokenStrip : public QListWidget {
  Q_OBJECT
 public:
  explicit TokenStrip(QWidget* parent = nullptr);
  void setTokens(const QStringList& pieces, const QVector<int>& ids);
  // Folds positions [begin, end) into one chip labelled `label` when the span is longer than
  // `foldAbove` positions (begin < 0: no span). Kept across setTokens until replaced.
  void setFoldableSpan(int begin, int end, const QString& label, int foldAbove = 64);
  void setSpanFolded(bool folded);
  bool spanFolded() const { return m_folded && spanUsable(); }
  void selectPosition(int pos);
  // The selected prompt position (a folded span's chip stands for the position last selected in it,
  // at first its last one), -1 when none.
  int selectedPosition() const;
  // Every selected position, ascending (a selected folded chip stands for its whole span).
  QVector<int> selectedPositions() const;
  int positionCount() const { return static_cast<int>(m_pieces.size()); }
  // Visible form of a piece: spaces as '·', newlines as '⏎'.
  static QString chipText(const QString& piece);

 signals:
  void positionSelected(int pos);
  void selectionSpanChanged(const QVector<int>& positions);

 private:
  void rebuild(int keepPosition);  // keepPosition: selected again afterwards (-1: none), silently
  bool spanUsable() const { return m_spanBegin >= 0 && m_spanEnd > m_spanBegin && m_spanEnd <= m_pieces.size(); }
  int rowOf(int pos) const;
  int positionOf(int row) const;
  QStringList m_pieces;
  QVector<int> m_ids;
  int m_spanBegin = -1, m_spanEnd = -1;
  int m_spanPosition = -1;  // the position a folded chip stands for
  QString m_spanLabel;
  bool m_folded = false;
};

}  // namespace headlab::views
