// Tokens as chips in reading order; hover shows id and string, a click selects the query position.
#pragma once
#include <QListWidget>

namespace headlab::views {

class TokenStrip : public QListWidget {
  Q_OBJECT
 public:
  explicit TokenStrip(QWidget* parent = nullptr);
  void setTokens(const QStringList& pieces, const QVector<int>& ids);
  void selectPosition(int pos);
  int selectedPosition() const { return currentRow(); }
  // Visible form of a piece: spaces as '·', newlines as '⏎'.
  static QString chipText(const QString& piece);

 signals:
  void positionSelected(int pos);
};

}  // namespace headlab::views
