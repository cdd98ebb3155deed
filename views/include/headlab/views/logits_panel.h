// Top-k next tokens: baseline and intervened probabilities side by side, and their difference;
// a target-token box follows one token's probability.
#pragma once
#include <QWidget>
#include <vector>

#include "headlab/views/view_data.h"

class QTableWidget;
class QLineEdit;
class QLabel;

namespace headlab::views {

class LogitsPanel : public QWidget {
  Q_OBJECT
 public:
  explicit LogitsPanel(QWidget* parent = nullptr);
  void setPredictions(const std::vector<TokenProb>& top, const TokenProb& target);
  // Which position the predictions are for ("" = the last position: the next token).
  void setPosition(const QString& where);
  QString position() const;
  const std::vector<TokenProb>& predictions() const { return m_top; }
  const TokenProb& target() const { return m_target; }
  QTableWidget* table() const { return m_table; }
  QLineEdit* targetEdit() const { return m_targetEdit; }

 signals:
  void targetChanged(const QString& token);

 private:
  QTableWidget* m_table;
  QLineEdit* m_targetEdit;
  QLabel* m_targetLabel;
  QLabel* m_position;
  std::vector<TokenProb> m_top;
  TokenProb m_target;
};

}  // namespace headlab::views
