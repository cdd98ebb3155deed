// The window's files: recent models, heatmap / trace / probe-result export, sessions.
#include <QApplication>
#include <QFile>
#include <algorithm>
#include <cmath>
#include <QFileDialog>
#include <QInputDialog>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLineEdit>
#include <QMenu>
#include <QCheckBox>
#include <QComboBox>
#include <QPlainTextEdit>
#include <QSaveFile>
#include <QSettings>
#include <QStatusBar>

#include "headlab/views/head_grid_model.h"
#include "headlab/views/heatmap_view.h"
#include "headlab/views/patching_panel.h"
#include "headlab/views/probe_panel.h"
#include "main_window.h"

#include "session_controller.h"

namespace headlab::app {

void MainWindow::addRecent(const QString& spec) {
  QSettings settings;
  QStringList recent = settings.value("recentModels").toStringList();
  recent.removeAll(spec);
  recent.prepend(spec);
  settings.setValue("recentModels", recent.mid(0, 10));
  refreshRecentMenu();
}

void MainWindow::refreshRecentMenu() {
  m_recentMenu->clear();
  const QStringList recent = QSettings().value("recentModels").toStringList();
  for (const QString& r : recent) m_recentMenu->addAction(r, this, [this, r] { openModel(r); });
  m_recentMenu->setEnabled(!recent.isEmpty());
}

void MainWindow::exportHeatmap() {
  QString path = QFileDialog::getSaveFileName(this, tr("Export heatmap"), "heatmap.pdf", tr("PDF (*.pdf);;PNG (*.png);;SVG (*.svg)"));
  if (path.isEmpty()) return;
  bool ok = false;
  QString size = QInputDialog::getText(this, tr("Size"), tr("width × height:"), QLineEdit::Normal, "800x700", &ok);
  if (!ok) return;
  int w = size.section('x', 0, 0).toInt(), h = size.section('x', 1, 1).toInt();
  if (w <= 0 || h <= 0) return statusBar()->showMessage(tr("error: size must look like 800x700"));
  statusBar()->showMessage(m_heatmap->exportTo(path, w, h) ? tr("exported %1").arg(path) : tr("error: cannot write %1").arg(path));
}

QString MainWindow::figureMetadata() const {
  QStringList edits;
  for (int l = 0; l < m_layers; ++l)
    for (int h = 0; h < m_heads; ++h) {
      const auto& st = m_gridModel->state(l, h);
      if (st.ablation != views::AblationKind::None)
        edits << QString("%1 L%2H%3%4").arg(views::ablationName(st.ablation)).arg(l).arg(h)
                     .arg(st.keys.isEmpty() ? QString() : " keys " + views::positionList(st.keys));
      if (st.alpha != 1.0f) edits << QString("scale L%1H%2 alpha=%3").arg(l).arg(h).arg(st.alpha);
    }
  return QString("HeadLab %1; model: %2; prompt: '%3'%4; edits: %5")
      .arg(QApplication::applicationVersion(), m_modelSpec, m_prompt->text(), m_imagePath.isEmpty() ? QString() : "; image: " + m_imagePath,
           edits.isEmpty() ? QString("none") : edits.join(", "));
}

namespace {
QJsonObject patchingJson(const views::PatchingRequestView& r) {
  return {{"clean", r.clean}, {"corrupted", r.corrupted}, {"answer", r.answer}, {"wrong", r.wrong}, {"sweep", r.sweep}, {"method", r.method},
          {"corrupted_image", r.corruptedImage}, {"noising", r.noising}, {"apply_edits", r.applyEdits}, {"receiver", r.receiver}, {"input", r.input}};
}
views::PatchingRequestView patchingRequest(const QJsonObject& o) {
  views::PatchingRequestView r;
  r.clean = o.value("clean").toString(), r.corrupted = o.value("corrupted").toString(), r.answer = o.value("answer").toString();
  r.wrong = o.value("wrong").toString(), r.sweep = o.value("sweep").toString("heads"), r.method = o.value("method").toString("exact");
  r.corruptedImage = o.value("corrupted_image").toString(), r.noising = o.value("noising").toBool(), r.applyEdits = o.value("apply_edits").toBool();
  r.receiver = o.value("receiver").toString(), r.input = o.value("input").toString("v");
  return r;
}
}  // namespace

QString MainWindow::sessionJson() const {
  QJsonArray edits;
  for (int l = 0; l < m_layers; ++l)
    for (int h = 0; h < m_heads; ++h) {
      const auto& st = m_gridModel->state(l, h);
      if (!st.edited()) continue;
      QJsonObject e{{"layer", l}, {"head", h}, {"ablation", views::ablationName(st.ablation)}, {"alpha", st.alpha}};
      if (st.ablation == views::AblationKind::Pasta) e.insert("keys", QJsonArray::fromVariantList([&] {
        QVariantList keys;
        for (int k : st.keys) keys << k;
        return keys;
      }()));
      edits.append(e);
    }
  QJsonObject o{{"schema", "headlab.session"},
                {"schema_version", 1},
                {"model", m_modelSpec},
                {"prompt", m_prompt->text()},
                {"edits", edits},
                {"ablation_kind", views::ablationName(m_gridModel->ablationKind())},
                {"selected", QJsonObject{{"layer", m_layer}, {"head", m_head}}},
                {"probe", QJsonObject{{"name", m_probes->currentProbe()}, {"params", m_probes->paramsText()}}},
                {"log_scale", m_log->isChecked()},
                {"image", m_imagePath},
                {"vhr", m_vhr->isChecked()},
                {"overlay", m_overlaySource->currentIndex() == 1 ? "layer average" : "selected head"},
                {"patching", patchingJson(m_patching->request())}};
  return QString::fromUtf8(QJsonDocument(o).toJson());
}

bool MainWindow::saveSession(const QString& path) {
  QSaveFile f(path);  // atomic: a failed save never leaves half a session
  if (!f.open(QIODevice::WriteOnly) || f.write(sessionJson().toUtf8()) < 0 || !f.commit()) {
    statusBar()->showMessage(tr("error: cannot write session %1").arg(path));
    return false;
  }
  statusBar()->showMessage(tr("session saved: %1").arg(path));
  return true;
}

void MainWindow::openSession(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return statusBar()->showMessage(tr("error: cannot open session %1").arg(path));
  QJsonParseError err;
  QJsonObject o = QJsonDocument::fromJson(f.readAll(), &err).object();
  if (err.error != QJsonParseError::NoError || o.value("schema").toString() != "headlab.session")
    return statusBar()->showMessage(tr("error: %1 is not a HeadLab session").arg(path));
  m_pendingEdits.clear();
  m_refusedEdits.clear();
  m_reportRefused = true;
  const QJsonArray edits = o.value("edits").toArray();
  for (int i = 0; i < edits.size(); ++i) {
    QJsonObject e = edits[i].toObject();
    views::HeadEdit edit{e.value("layer").toInt(-1), e.value("head").toInt(-1), {}};
    const QString what = tr("edit %1 (layer %2, head %3)").arg(i + 1).arg(edit.layer).arg(edit.head);
    const QString kind = e.value("ablation").toString("none");
    bool known = false;
    QStringList kindNames;
    for (auto k : views::kAblationKinds) {
      kindNames << views::ablationName(k);
      if (views::ablationName(k) == kind) edit.state.ablation = k, known = true;
    }
    for (const QJsonValue& k : e.value("keys").toArray()) edit.state.keys << k.toInt(-1);
    std::sort(edit.state.keys.begin(), edit.state.keys.end());
    const bool badKeys = edit.state.ablation == views::AblationKind::Pasta &&
                         (edit.state.keys.isEmpty() || *std::min_element(edit.state.keys.begin(), edit.state.keys.end()) < 0);
    const double alpha = e.value("alpha").toDouble(1.0);
    if (edit.layer < 0 || edit.head < 0) m_refusedEdits << what + tr(": no layer or head");
    else if (!known) m_refusedEdits << what + tr(": unknown ablation '%1' (%2)").arg(kind, kindNames.join(", "));
    else if (badKeys) m_refusedEdits << what + tr(": pasta needs \"keys\", the emphasised positions (non-negative)");
    else if (!std::isfinite(alpha) || alpha < 0 || alpha > 4) m_refusedEdits << what + tr(": α = %1 outside [0, 4]").arg(alpha);
    else edit.state.alpha = static_cast<float>(alpha), m_pendingEdits.push_back(edit);
  }
  const QString kind = o.value("ablation_kind").toString();
  for (int i = 0; i < m_kind->count(); ++i)
    if (views::ablationName(static_cast<views::AblationKind>(m_kind->itemData(i).toInt())) == kind) m_kind->setCurrentIndex(i);
  m_pendingLayer = o.value("selected").toObject().value("layer").toInt(-1);
  m_pendingHead = o.value("selected").toObject().value("head").toInt(-1);
  m_log->setChecked(o.value("log_scale").toBool());
  QJsonObject probe = o.value("probe").toObject();
  if (!probe.value("name").toString().isEmpty()) {
    m_probes->selectProbe(probe.value("name").toString());
    m_probes->setParamsText(probe.value("params").toString());
  }
  if (o.contains("patching")) m_patching->setRequest(patchingRequest(o.value("patching").toObject()));
  m_pendingVhr = o.value("vhr").toBool();
  setOverlayAverage(o.value("overlay").toString() == "layer average");
  openModel(o.value("model").toString(), o.value("prompt").toString(), o.value("image").toString());
}

bool MainWindow::exportProbeResult(const QString& path) {
  if (m_lastProbeJson.isEmpty()) {
    statusBar()->showMessage(tr("error: run a probe first"));
    return false;
  }
  QSaveFile f(path);
  const bool ok = f.open(QIODevice::WriteOnly) && f.write(m_lastProbeJson.toUtf8()) >= 0 && f.commit();
  statusBar()->showMessage(ok ? tr("result written: %1").arg(path) : tr("error: cannot write %1").arg(path));
  return ok;
}

void MainWindow::exportTrace(const QString& path, const QString& hooksGlob, bool force) {
  statusBar()->showMessage(tr("writing trace %1…").arg(path));
  m_exportPending = true;
  m_session->exportTrace(path, hooksGlob, force);
}

}  // namespace headlab::app
