// Layers × heads as a Qt table model: colour = a chosen score, badge = the head's intervention.
// Emits intents (ablation toggled, alpha changed); the owner applies them to the model.
#pragma once
#include <QAbstractTableModel>
#include <QColor>
#include <vector>

#include "headlab/views/view_data.h"

namespace headlab::views {

class HeadGridModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  explicit HeadGridModel(QObject* parent = nullptr);

  void setShape(int layers, int heads);  // resets scores and states
  void setScores(const HeadScores& scores);
  const HeadScores& scores() const { return m_scores; }
  void setAblationKind(AblationKind k) { m_kind = k; }
  AblationKind ablationKind() const { return m_kind; }
  const HeadState& state(int layer, int head) const;
  const std::vector<HeadState>& states() const { return m_states; }
  void setStates(const std::vector<HeadState>& states);

  // Toggles the toolbar's ablation kind on a head and emits headStateChanged. Adding PASTA takes the
  // emphasised positions set by setEmphasis; with none it changes nothing and returns false.
  bool toggleAblation(int layer, int head);
  void setEmphasis(QVector<int> positions);  // PASTA's emphasised prompt positions for the next toggles
  const QVector<int>& emphasis() const { return m_emphasis; }
  void setAlpha(int layer, int head, float alpha);  // clamped to [0, 4]
  void resetAll();
  int editedCount() const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  // Colour-blind-safe (viridis) colour for a score normalised to [0, 1].
  static QColor colourFor(float normalised);
  // The score of a cell mapped into [0, 1] by the current min/max (NaN -> -1).
  float normalised(int layer, int head) const;

 signals:
  void headStateChanged(int layer, int head, headlab::views::HeadState state);
  void allReset();

 private:
  int m_layers = 0, m_heads = 0;
  HeadScores m_scores;
  std::vector<HeadState> m_states;
  AblationKind m_kind = AblationKind::Zero;
  QVector<int> m_emphasis;
  float m_min = 0, m_max = 1;
};

}  // namespace headlab::views
