// SessionController's vision-language requests: the prompt's image and VHR (issue #10).
// torch first: Qt's keywords break torch headers included after them.
#include <ATen/ATen.h>

#include "session_worker.h"

#include <QElapsedTimer>
#include <QImage>
#include <algorithm>

#include <nlohmann/json.hpp>

#include "headlab/core/errors.h"
#include "headlab/plugins/probe_plugin.h"

namespace headlab::app {

RgbImage rgbImage(const QImage& image) {
  const QImage rgb = image.convertToFormat(QImage::Format_RGB888);
  RgbImage out{std::vector<uint8_t>(static_cast<size_t>(rgb.width()) * rgb.height() * 3), rgb.width(), rgb.height()};
  for (int y = 0; y < rgb.height(); ++y)  // QImage pads each scan line to 4 bytes
    std::copy_n(rgb.constScanLine(y), static_cast<size_t>(rgb.width()) * 3, out.bytes.data() + static_cast<size_t>(y) * rgb.width() * 3);
  return out;
}

void SessionController::setImage(const QImage& image) {
  // Pixels are copied here, on the GUI thread (cheap); preprocessing runs on the worker.
  if (image.isNull()) {
    emit failed(tr("the image is empty or could not be read"));
    return;
  }
  post([this, rgb = rgbImage(image)] {
    auto& w = *m_worker;
    if (!w.session.vlm) throw InputError("the open model has no vision tower: open a LLaVA folder or demo-vlm to use images");
    w.session.pixels = clipPreprocess(rgb.bytes, rgb.width, rgb.height, *w.visionConfig()).to(w.model()->device());
    QMetaObject::invokeMethod(this, [this] { emit imageAccepted(); }, Qt::QueuedConnection);
  });
}

void SessionController::clearImage() {
  post([this] {
    m_worker->session.pixels = at::Tensor();
    QMetaObject::invokeMethod(this, [this] { emit imageAccepted(); }, Qt::QueuedConnection);
  });
}

void SessionController::computeVhr() {
  // Worker thread. VHR (PROBES.md §4) through the vhd probe, so that the GUI and the CLI select the
  // same heads: alpha = 2 on heads above the layer median, chosen at the first generation step.
  auto& w = *m_worker;
  w.vhr.clear();
  if (!w.session.vlm || !w.session.pixels.defined() || w.promptIds.empty()) {
    QMetaObject::invokeMethod(this, [this] { emit vhrApplied(false, tr("VHR needs an image prompt: load an image and run a prompt")); },
                              Qt::QueuedConnection);
    return;
  }
  auto probe = plugins::ProbeRegistry::instance().create("vhd");
  plugins::ProbeContext ctx{*w.model(), &w.tokenizer(), {{"tokens", w.promptIds}, {"vhr", true}}, {}};
  ctx.vlm = w.session.vlm.get(), ctx.pixels = &w.session.pixels;
  nlohmann::json r = probe->run(ctx)["vhr"];
  QStringList parts;
  for (const auto& layer : r["heads"]) {
    Intervention iv{InterventionKind::Scale, layer["layer"].get<int>(), layer["heads"].get<std::vector<int>>()};
    iv.alpha = r["alpha"].get<double>();
    if (iv.heads.empty()) continue;
    QStringList hs;
    for (int h : iv.heads) hs << QString::number(h);
    parts << QString("L%1 H%2").arg(iv.layer).arg(hs.join(","));
    w.vhr.push_back(iv);
  }
  const QString text = tr("VHR: α = %1 on %2").arg(r["alpha"].get<double>()).arg(parts.isEmpty() ? tr("no heads") : parts.join("; "));
  QMetaObject::invokeMethod(this, [this, text] { emit vhrApplied(true, text); }, Qt::QueuedConnection);
}

void SessionController::setVhr(bool on) {
  post([this, on] {
    auto& w = *m_worker;
    w.vhrOn = on;
    if (on) computeVhr();
    else w.vhr.clear();
    if (!on) QMetaObject::invokeMethod(this, [this] { emit vhrApplied(false, tr("VHR off")); }, Qt::QueuedConnection);
    if (!w.runner || w.runner->tokens().empty()) return;
    QElapsedTimer t;
    t.start();
    const int from = w.runner->update(w.allInterventions());
    emitPredictions(from, t.nsecsElapsed() / 1e6);
    emitLayer();
  });
}

}  // namespace headlab::app
