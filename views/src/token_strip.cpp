#include "headlab/views/token_strip.h"

namespace headlab::views {

TokenStrip::TokenStrip(QWidget* parent) : QListWidget(parent) {
  setFlow(QListView::LeftToRight);
  setWrapping(true);
  setResizeMode(QListView::Adjust);
  setSpacing(3);
  setSelectionMode(QAbstractItemView::SingleSelection);
  setStyleSheet("QListWidget::item { border: 1px solid #9ab; border-radius: 4px; padding: 2px 4px; background: #eef4fa; }"
                "QListWidget::item:selected { background: #3b528b; color: white; }");
  connect(this, &QListWidget::currentRowChanged, this, [this](int row) {
    if (row >= 0) emit positionSelected(row);
  });
}

QString TokenStrip::chipText(const QString& piece) {
  QString t = piece;
  t.replace(' ', QChar(0x00B7)).replace('\n', QChar(0x23CE));
  return t.isEmpty() ? QString("∅") : t;
}

void TokenStrip::setTokens(const QStringList& pieces, const QVector<int>& ids) {
  QSignalBlocker block(this);
  clear();
  for (int i = 0; i < pieces.size(); ++i) {
    auto* item = new QListWidgetItem(chipText(pieces[i]), this);
    item->setToolTip(QString("position %1\nid %2\n'%3'").arg(i).arg(i < ids.size() ? ids[i] : -1).arg(pieces[i]));
  }
}

void TokenStrip::selectPosition(int pos) {
  if (pos >= 0 && pos < count()) setCurrentRow(pos);
}

}  // namespace headlab::views
