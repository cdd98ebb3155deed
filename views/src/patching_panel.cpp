#include "headlab/views/patching_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>

#include "headlab/views/heatmap_view.h"

namespace headlab::views {

PatchingPanel::PatchingPanel(QWidget* parent)
    : QWidget(parent), m_clean(new QLineEdit), m_corrupted(new QLineEdit), m_answer(new QLineEdit), m_wrong(new QLineEdit),
      m_corruptedImage(new QLineEdit), m_imageRow(new QWidget), m_sweep(new QComboBox), m_method(new QComboBox),
      m_run(new QPushButton(tr("Run sweep"))), m_cancel(new QPushButton(tr("Cancel"))), m_message(new QLabel), m_heatmap(new HeatmapView),
      m_noising(new QCheckBox(tr("noising"))), m_applyEdits(new QCheckBox(tr("with the window's edits"))), m_receiver(new QLineEdit),
      m_input(new QComboBox), m_pathRow(new QWidget), m_comparison(new HeatmapView) {
  m_run->setObjectName("patchRun");
  m_cancel->setObjectName("patchCancel");
  m_cancel->setEnabled(false);
  m_sweep->setObjectName("patchSweep");
  m_sweep->addItem("heads");  // until the app sets the core's table
  m_method->addItems({"exact", "attribution", "both"});
  m_method->setItemData(2, tr("exact and attribution side by side, with their correlation"), Qt::ToolTipRole);
  m_clean->setPlaceholderText(tr("clean prompt"));
  m_corrupted->setPlaceholderText(tr("corrupted prompt (same number of tokens)"));
  m_answer->setPlaceholderText(tr("e.g. ' Lily' or #317"));
  m_wrong->setPlaceholderText(tr("wrong token"));
  m_message->setWordWrap(true);
  auto* form = m_form = new QFormLayout;
  auto* cleanRow = new QHBoxLayout;
  cleanRow->addWidget(m_clean, 1);
  auto* useWindow = new QPushButton(tr("← prompt"));
  useWindow->setObjectName("patchUseWindowPrompt");
  useWindow->setToolTip(tr("Use the window's prompt (and image) as the clean run"));
  connect(useWindow, &QPushButton::clicked, this, [this] { m_clean->setText(m_windowPrompt); });
  cleanRow->addWidget(useWindow);
  form->addRow(tr("clean"), cleanRow);
  form->addRow(tr("corrupted"), m_corrupted);
  m_corruptedImage->setObjectName("patchCorruptedImage");
  m_corruptedImage->setPlaceholderText(tr("corrupted image file (empty: the prompt's image)"));
  auto* browse = new QPushButton(tr("…"));
  browse->setToolTip(tr("choose the corrupted run's image"));
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, tr("Corrupted image"), QString(), tr("Images (*.png *.jpg *.jpeg *.bmp *.ppm *.gif)"));
    if (!path.isEmpty()) m_corruptedImage->setText(path);
  });
  auto* imageLayout = new QHBoxLayout(m_imageRow);
  imageLayout->setContentsMargins(0, 0, 0, 0);
  imageLayout->addWidget(m_corruptedImage, 1);
  imageLayout->addWidget(browse);
  form->addRow(tr("corrupted image"), m_imageRow);
  form->setRowVisible(m_imageRow, false);
  // The answer and the wrong token share a row: the panel stays short enough to leave the window's
  // height to the attention maps.
  auto* tokens = new QHBoxLayout;
  tokens->addWidget(m_answer, 1);
  tokens->addWidget(new QLabel(tr("wrong")));
  tokens->addWidget(m_wrong, 1);
  form->addRow(tr("answer"), tokens);
  auto* row = new QHBoxLayout;
  row->addWidget(m_sweep);
  row->addWidget(m_method);
  row->addWidget(m_run);
  row->addWidget(m_cancel);
  form->addRow(tr("sweep"), row);
  form->addRow(QString(), buildOptionsRow());
  auto* left = new QVBoxLayout;
  left->addLayout(form);
  left->addWidget(m_message);
  left->addStretch();
  auto* layout = new QHBoxLayout(this);
  layout->addLayout(left, 1);
  layout->addWidget(m_heatmap, 2);
  layout->addWidget(m_comparison, 2);
  m_comparison->setVisible(false);
  connect(m_run, &QPushButton::clicked, this, [this] { emit runRequested(request()); });
  connect(m_cancel, &QPushButton::clicked, this, [this] { emit cancelRequested(); });
}

// Noising, the window's edits, and path patching's receiver and input (shown for the path sweep).
QLayout* PatchingPanel::buildOptionsRow() {
  m_noising->setObjectName("patchNoising");
  m_noising->setToolTip(tr("Noising: patch corrupted activations into the clean run (what breaks it). Off: denoising, clean into corrupted (what restores it)."));
  m_applyEdits->setObjectName("patchApplyEdits");
  m_applyEdits->setToolTip(tr("Keep the window's head edits installed in the clean, corrupted and patched runs. Off: the unedited model."));
  m_receiver->setObjectName("patchReceiver");
  m_receiver->setPlaceholderText(tr("receiver L.H"));
  m_input->addItems({"q", "k", "v"});
  m_input->setCurrentText("v");
  auto* options = new QHBoxLayout;
  options->addWidget(m_noising);
  options->addWidget(m_applyEdits);
  auto* pathLayout = new QHBoxLayout(m_pathRow);
  pathLayout->setContentsMargins(0, 0, 0, 0);
  pathLayout->addWidget(m_receiver);
  pathLayout->addWidget(m_input);
  options->addWidget(m_pathRow);
  options->addStretch();
  m_pathRow->setVisible(false);
  m_pathRow->setToolTip(tr("Path patching: every earlier head as a sender, through this receiver's q, k or v"));
  connect(m_sweep, &QComboBox::currentTextChanged, this, [this](const QString& sweep) { m_pathRow->setVisible(sweep == "path"); });
  return options;
}

void PatchingPanel::setSweepKinds(const QStringList& names, const QStringList& summaries) {
  const QString current = m_sweep->currentText();
  m_sweep->clear();
  for (int i = 0; i < names.size(); ++i) {
    m_sweep->addItem(names[i]);
    if (i < summaries.size()) m_sweep->setItemData(i, summaries[i], Qt::ToolTipRole);
  }
  m_sweep->addItem("path");
  m_sweep->setItemData(m_sweep->count() - 1, tr("path patching (Wang et al.): each earlier head's effect on one receiver head through its q, k or v"),
                       Qt::ToolTipRole);
  const int keep = m_sweep->findText(current);
  m_sweep->setCurrentIndex(keep >= 0 ? keep : 0);
}

PatchingRequestView PatchingPanel::request() const {
  return {m_clean->text(), m_corrupted->text(), m_answer->text(), m_wrong->text(), m_sweep->currentText(), m_method->currentText(),
          m_imageInputs ? m_corruptedImage->text() : QString(), m_noising->isChecked(), m_applyEdits->isChecked(), m_receiver->text().trimmed(),
          m_input->currentText()};
}

void PatchingPanel::setImageInputs(bool enabled) {
  m_imageInputs = enabled;
  m_form->setRowVisible(m_imageRow, enabled);
  m_corrupted->setPlaceholderText(enabled ? tr("corrupted prompt (empty: the clean prompt, with the corrupted image)")
                                          : tr("corrupted prompt (same number of tokens)"));
}

void PatchingPanel::setRequest(const PatchingRequestView& r) {
  m_clean->setText(r.clean), m_corrupted->setText(r.corrupted), m_answer->setText(r.answer), m_wrong->setText(r.wrong);
  m_sweep->setCurrentText(r.sweep), m_method->setCurrentText(r.method);
  m_corruptedImage->setText(r.corruptedImage);
  m_noising->setChecked(r.noising), m_applyEdits->setChecked(r.applyEdits);
  m_receiver->setText(r.receiver), m_input->setCurrentText(r.input);
}

void PatchingPanel::setRunning(bool running) {
  m_run->setEnabled(!running);
  m_cancel->setEnabled(running);
  if (running) m_message->setText(tr("running…"));
}

bool PatchingPanel::running() const { return !m_run->isEnabled(); }

void PatchingPanel::setProgress(double fraction, const QString& stage) {
  if (m_run->isEnabled()) return;  // a late report of a sweep that has ended
  m_message->setText(tr("running… %1% (%2)").arg(static_cast<int>(fraction * 100)).arg(stage));
}

void PatchingPanel::setStale(const QString& reason) {
  if (m_resultText.isEmpty() || running()) return;
  m_message->setText(reason.isEmpty() ? m_resultText : tr("stale (%1): ").arg(reason) + m_resultText);
}

void PatchingPanel::setComparison(const HeatmapData& attribution) {
  m_comparison->setData(attribution);
  m_comparison->setVisible(!attribution.empty());
}

void PatchingPanel::setResult(const HeatmapData& grid, const QString& summary) {
  m_heatmap->setData(grid);
  m_resultText = summary;
  m_message->setText(summary);
  m_run->setEnabled(true);
  m_cancel->setEnabled(false);
}

void PatchingPanel::setMessage(const QString& text) {
  m_message->setText(text);
  m_run->setEnabled(true);
  m_cancel->setEnabled(false);
}

}  // namespace headlab::views
