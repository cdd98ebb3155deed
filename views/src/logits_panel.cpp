#include "headlab/views/logits_panel.h"

#include "headlab/views/token_strip.h"

#include <cmath>

#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QTableWidget>
#include <QVBoxLayout>

namespace headlab::views {

LogitsPanel::LogitsPanel(QWidget* parent)
    : QWidget(parent), m_table(new QTableWidget(0, 4, this)), m_targetEdit(new QLineEdit(this)), m_targetLabel(new QLabel(this)),
      m_position(new QLabel(this)) {
  auto* layout = new QVBoxLayout(this);
  m_position->setObjectName("logitsPosition");
  m_position->setToolTip(tr("The probabilities of the token after this position; select a token chip for another position"));
  setPosition({});
  layout->addWidget(m_position);
  // Short headers so the four columns fit the default dock width; the tooltips say what they are.
  m_table->setHorizontalHeaderLabels({tr("token"), tr("before"), tr("after"), tr("Δ")});
  m_table->horizontalHeaderItem(1)->setToolTip(tr("probability with no interventions (baseline)"));
  m_table->horizontalHeaderItem(2)->setToolTip(tr("probability with the current ablations and reweightings"));
  m_table->horizontalHeaderItem(3)->setToolTip(tr("after − before"));
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  m_table->verticalHeader()->hide();
  m_table->setWordWrap(false);
  m_table->setTextElideMode(Qt::ElideRight);
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_targetEdit->setPlaceholderText(tr("follow a token, e.g. ' Lily'"));
  layout->addWidget(m_table);
  layout->addWidget(m_targetEdit);
  layout->addWidget(m_targetLabel);
  connect(m_targetEdit, &QLineEdit::editingFinished, this, [this] { emit targetChanged(m_targetEdit->text()); });
}

void LogitsPanel::setPosition(const QString& where) {
  m_position->setText(where.isEmpty() ? tr("next token (last position)") : tr("next token %1").arg(where));
}

QString LogitsPanel::position() const { return m_position->text(); }

namespace {
// Probabilities and their changes as numbers that never hide a difference: four decimals down to
// 1e-3, then two significant digits in e-notation ("+3.2e-06"), so a small Δ does not read +0.0000.
QString probabilityText(double p) { return p == 0 ? QString("0") : p >= 1e-3 ? QString::number(p, 'f', 4) : QString::number(p, 'e', 1); }
QString deltaText(double d) {
  if (d == 0) return QString("±0");
  return (d > 0 ? "+" : "") + (std::abs(d) >= 1e-3 ? QString::number(d, 'f', 4) : QString::number(d, 'e', 1));
}
}  // namespace

void LogitsPanel::setPredictions(const std::vector<TokenProb>& top, const TokenProb& target) {
  m_top = top;
  m_target = target;
  m_table->setRowCount(static_cast<int>(top.size()));
  for (int r = 0; r < static_cast<int>(top.size()); ++r) {
    const TokenProb& t = top[r];
    const float delta = t.intervened - t.baseline;
    auto* name = new QTableWidgetItem(TokenStrip::chipText(t.text));  // spaces as '·': one line, as in the token strip
    name->setToolTip(QString("id %1").arg(t.id));
    m_table->setItem(r, 0, name);
    m_table->setItem(r, 1, new QTableWidgetItem(probabilityText(t.baseline)));
    m_table->setItem(r, 2, new QTableWidgetItem(probabilityText(t.intervened)));
    auto* d = new QTableWidgetItem(deltaText(delta));
    d->setToolTip(QString::number(delta, 'g', 9));
    d->setForeground(delta > 0 ? QColor(33, 120, 60) : delta < 0 ? QColor(170, 40, 40) : QColor(90, 90, 90));
    m_table->setItem(r, 3, d);
  }
  if (target.id >= 0 && !target.text.isNull())
    m_targetLabel->setText(QString("'%1' (id %2): %3 → %4").arg(target.text).arg(target.id)
                               .arg(probabilityText(target.baseline), probabilityText(target.intervened)));
  else
    m_targetLabel->setText(m_targetEdit->text().isEmpty() ? QString() : tr("not a single token"));
}

}  // namespace headlab::views
