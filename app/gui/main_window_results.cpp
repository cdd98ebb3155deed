// MainWindow's probe and patching results: running probes on the window's prompt, showing their
// grids, maps and summaries, the patching dock's results, and marking results stale when the model,
// prompt or image they were computed on changes.
#include <QApplication>
#include <QComboBox>
#include <QDockWidget>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLineEdit>
#include <QStatusBar>

#include "headlab/views/head_grid_model.h"
#include "headlab/views/heatmap_view.h"
#include "headlab/views/image_attention_view.h"
#include "headlab/views/patching_panel.h"
#include "headlab/views/probe_panel.h"
#include "main_window.h"
#include "session_controller.h"

namespace headlab::app {

void MainWindow::connectProbes() {
  connect(m_probes, &views::ProbePanel::runRequested, this, [this](const QString& name, const QString& params) {
    startProbe(name, params);
  });
  connect(m_probes, &views::ProbePanel::cancelRequested, m_session, &SessionController::cancel);
  connect(m_session, &SessionController::probesListed, m_probes, &views::ProbePanel::setProbes);
  connect(m_session, &SessionController::probeProgress, m_probes, &views::ProbePanel::setProgress);
  connect(m_session, &SessionController::probeCurve, m_probes, &views::ProbePanel::setCurve);
  connect(m_probes, &views::ProbePanel::headSelected, this, &MainWindow::selectHead);
  connect(m_session, &SessionController::probeCancelled, this, [this] {
    m_probes->setRunning(false);
    m_probes->setProgress(0, tr("cancelled"));
    statusBar()->showMessage(tr("probe cancelled"));
  });
  connect(m_session, &SessionController::probeExtraGridsReady, this, [this](const std::vector<views::HeadScores>& g) { m_extraGrids = g; });
  connect(m_session, &SessionController::probeImageMap, this, [this](int side, const std::vector<float>& values, const QString& caption) {
    if (m_image.isNull() || side * side != static_cast<int>(values.size())) return;
    m_imageView->setAttention({m_image, side, values, caption});  // until another head or query is chosen
    dock("imageDock")->raise();
  });
  connect(m_session, &SessionController::probeFinished, this, &MainWindow::showProbeResult);
  m_session->listProbes();
}

void MainWindow::showProbeResult(const QString& name, const views::HeadScores& grid, const QString& summary, const QString& json) {
  m_lastProbeJson = json;
  m_probes->setRunning(false);
  m_probes->setResult(grid, summary);
  if (grid.layers != m_layers || grid.heads != m_heads) return;
  // The result colours the head grid and stays selectable in the colour menu.
  // Every grid the probe computed is a colouring (induction's previous- and duplicate-token scores
  // too); the main one is shown.
  const int index = addColouring(grid);
  for (const auto& extra : m_extraGrids)
    if (extra.layers == m_layers && extra.heads == m_heads) addColouring(extra);
  m_extraGrids.clear();
  m_score->setCurrentIndex(2 + index);
  applyScoreChoice();
  statusBar()->showMessage(tr("%1 finished: %2").arg(name, summary));
}

// A head grid result in the colour menu (replacing one of the same name); its index among the results.
int MainWindow::addColouring(const views::HeadScores& g) {
  for (size_t i = 0; i < m_probeScores.size(); ++i)
    if (m_probeScores[i].name == g.name) return m_probeScores[i] = g, static_cast<int>(i);
  m_probeScores.push_back(g);
  m_score->addItem(g.name);
  return static_cast<int>(m_probeScores.size()) - 1;
}

void MainWindow::connectPatching() {
  connect(m_patching, &views::PatchingPanel::runRequested, this, [this](const views::PatchingRequestView& r) {
    m_patching->setRunning(true);
    m_session->runPatching(r);
  });
  connect(m_session, &SessionController::patchingComparisonReady, m_patching, &views::PatchingPanel::setComparison);
  connect(m_session, &SessionController::patchingFinished, this, &MainWindow::showPatchingResult);
  connect(m_patching, &views::PatchingPanel::cancelRequested, m_session, &SessionController::cancel);
  connect(m_session, &SessionController::patchingProgress, m_patching, &views::PatchingPanel::setProgress);
  connect(m_session, &SessionController::patchingCancelled, this, [this] {
    m_patching->setMessage(tr("cancelled"));
    statusBar()->showMessage(tr("patching cancelled"));
  });
}

void MainWindow::showPatchingResult(const views::HeatmapData& grid, const views::HeadScores& heads, const QString& summary) {
  m_patching->setResult(grid, summary);
  m_patchingModel = m_modelSpec;
  const views::PatchingRequestView r = m_patching->request();
  m_patching->heatmap()->setExportMetadata(QString("HeadLab %1; model: %2; activation patching, sweep %3 (%4): clean '%5', corrupted '%6', "
                                                   "metric logit('%7') - logit('%8'); %9")
                                               .arg(QApplication::applicationVersion(), m_modelSpec, r.sweep, r.method, r.clean, r.corrupted,
                                                    r.answer, r.wrong, summary.section('\n', 0, 0)));
  if (heads.layers == m_layers && heads.heads == m_heads && m_layers > 0) {
    m_probeScores.erase(std::remove_if(m_probeScores.begin(), m_probeScores.end(),
                                       [&](const views::HeadScores& s) { return s.name == heads.name; }),
                        m_probeScores.end());
    while (m_score->count() > 2) m_score->removeItem(m_score->count() - 1);
    for (const auto& s : m_probeScores) m_score->addItem(s.name);
    m_probeScores.push_back(heads);
    m_score->addItem(heads.name);
    m_score->setCurrentIndex(m_score->count() - 1);
    applyScoreChoice();
  }
  statusBar()->showMessage(tr("patching finished: %1").arg(summary.section(QLatin1Char('\n'), 0, 0)));  // the panel shows the rest
}

void MainWindow::runProbeOnPrompt(const QString& name) {
  m_probes->selectProbe(name);
  m_probes->setOnWindowPrompt(true);
  dock("probeDock")->raise();
  startProbe(name, m_probes->paramsText());
}

// Probes that read prompts take the window's prompt unless the panel asks for their built-in set:
// "prompt" becomes the window's prompt, "prompts" a set of that one prompt. What the result was
// computed on is kept, so a later change of prompt, image or model marks it stale.
void MainWindow::startProbe(const QString& name, const QString& paramsText) {
  QJsonParseError err;
  QJsonObject params = QJsonDocument::fromJson(paramsText.toUtf8(), &err).object();
  const bool usePrompt = m_probes->onWindowPrompt() && err.error == QJsonParseError::NoError && !m_prompt->text().isEmpty();
  if (usePrompt && params.contains("prompt")) params["prompt"] = m_prompt->text();
  if (usePrompt && params.contains("prompts")) params["prompts"] = QJsonArray{m_prompt->text()};
  // This prompt is what the user asks about: measured at its own length, not skipped for being
  // shorter than the probe's T (which the built-in sets are cut to).
  if (usePrompt && params.contains("short_prompts")) params["short_prompts"] = "keep";
  QString sent = paramsText;
  if (usePrompt && (params.contains("prompt") || params.contains("prompts"))) {
    m_probes->setParamsText(QString::fromUtf8(QJsonDocument(params).toJson(QJsonDocument::Indented)));
    sent = QString::fromUtf8(QJsonDocument(params).toJson(QJsonDocument::Compact));
  }
  m_probeInput = {m_modelSpec, usePrompt ? m_prompt->text() : QString(), usePrompt ? m_image.cacheKey() : 0};
  m_probes->setRunning(true);
  m_session->runProbe(name, sent);
}

// A probe result or patching sweep on screen that no longer matches the window's model, prompt or
// image says so (issue #19: they stayed on screen unmarked).
void MainWindow::markStaleResults() {
  QString probeReason;
  if (!m_probeInput.model.isEmpty() && m_probeInput.model != m_modelSpec) probeReason = tr("another model");
  else if (!m_probeInput.prompt.isEmpty() && m_probeInput.prompt != m_prompt->text()) probeReason = tr("another prompt");
  else if (!m_probeInput.prompt.isEmpty() && m_probeInput.image != m_image.cacheKey()) probeReason = tr("another image");
  m_probes->setStale(probeReason);
  m_patching->setStale(!m_patchingModel.isEmpty() && m_patchingModel != m_modelSpec ? tr("another model") : QString());
}

}  // namespace headlab::app
