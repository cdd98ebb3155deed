#include "trace_export_dialog.h"

#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QTimer>

#include "session_controller.h"

namespace headlab::app {

TraceExportDialog::TraceExportDialog(SessionController* session, QStringList hookNames, QWidget* parent)
    : QDialog(parent), m_session(session), m_hookNames(std::move(hookNames)), m_path(new QLineEdit("trace.h5")),
      m_hooks(new QLineEdit("blocks.*.attn.hook_pattern")), m_matches(new QLabel), m_estimate(new QLabel),
      m_estimateDelay(new QTimer(this)) {
  setWindowTitle(tr("Export HDF5 trace"));
  auto* form = new QFormLayout(this);
  auto* fileRow = new QHBoxLayout;
  auto* browse = new QPushButton(tr("Browse…"));
  fileRow->addWidget(m_path, 1);
  fileRow->addWidget(browse);
  form->addRow(tr("File:"), fileRow);
  m_hooks->setToolTip(tr("Hook names or globs, comma-separated: '*' matches any run of characters, '?' one character"));
  form->addRow(tr("Hooks:"), m_hooks);
  m_matches->setWordWrap(true);
  form->addRow(QString(), m_matches);
  form->addRow(tr("Size:"), m_estimate);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Cancel);
  m_ok = buttons->addButton(tr("Export"), QDialogButtonBox::AcceptRole);
  form->addRow(buttons);
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString f = QFileDialog::getSaveFileName(this, tr("Export trace"), m_path->text(), tr("HDF5 (*.h5)"));
    if (!f.isEmpty()) m_path->setText(f);
  });
  m_estimateDelay->setSingleShot(true);
  m_estimateDelay->setInterval(250);  // typing: estimate once the globs rest
  connect(m_estimateDelay, &QTimer::timeout, this, [this] {
    if (!matches().isEmpty()) m_session->estimateTrace(hooks());
  });
  connect(m_session, &SessionController::captureEstimate, this, [this](qint64 bytes, int hooks) {
    m_estimate->setText(tr("≈ %1 MB for %2 hook point(s) on the current prompt").arg(bytes / 1e6, 0, 'f', 2).arg(hooks));
  });
  connect(m_hooks, &QLineEdit::textChanged, this, &TraceExportDialog::refresh);
  connect(m_path, &QLineEdit::textChanged, this, &TraceExportDialog::refresh);
  refresh();
}

QString TraceExportDialog::path() const { return m_path->text().trimmed(); }
QString TraceExportDialog::hooks() const { return m_hooks->text().trimmed(); }
void TraceExportDialog::setPath(const QString& path) { m_path->setText(path); }
void TraceExportDialog::setHooks(const QString& globs) { m_hooks->setText(globs); }

QStringList TraceExportDialog::matches() const {
  QList<QRegularExpression> globs;
  for (const QString& g : hooks().split(',', Qt::SkipEmptyParts))
    globs << QRegularExpression(QRegularExpression::anchoredPattern(
                 QRegularExpression::escape(g.trimmed()).replace("\\*", ".*").replace("\\?", ".")));
  QStringList out;
  for (const QString& name : m_hookNames)
    for (const auto& re : globs)
      if (re.match(name).hasMatch()) {
        out << name;
        break;
      }
  return out;
}

void TraceExportDialog::refresh() {
  const QStringList found = matches();
  if (found.isEmpty()) {
    m_matches->setText(hooks().isEmpty() ? tr("name the hooks to write") : tr("matches no hook point of this model (File ▸ Model dock lists them)"));
    m_estimate->clear();
  } else {
    const QString shown = found.mid(0, 3).join(", ") + (found.size() > 3 ? ", …" : "");
    m_matches->setText(tr("matches %n hook point(s): ", nullptr, found.size()) + shown);
    m_estimate->setText(tr("estimating…"));
    m_estimateDelay->start();
  }
  m_ok->setEnabled(!found.isEmpty() && !path().isEmpty());
}

}  // namespace headlab::app
