// torch first: Qt's keywords break torch headers included after them.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "session_controller.h"
#include "session_worker.h"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QImage>
#include <QThread>
#include <algorithm>
#include <map>
#include <chrono>
#include <cmath>
#include <thread>

#include <nlohmann/json.hpp>

#include "headlab/core/model_session.h"
#include "headlab/core/errors.h"
#include "headlab/core/incremental_runner.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/patching.h"
#include "headlab/core/trace.h"
#include "headlab/core/vision_language.h"
#include "headlab/plugins/probe_plugin.h"

namespace headlab::app {

namespace {
QString q(const std::string& s) { return QString::fromStdString(s); }

views::HeadScores grid(int L, int H, const QString& name) {
  return views::HeadScores{L, H, std::vector<float>(static_cast<size_t>(L) * H, NAN), name, 0};
}

// A sweep's grid as a heatmap, for any layout: its last axis across, the others down (labels
// joined, "L3 H2", "attn L1"). Values are left to the caller.
views::HeatmapData sweepHeatmap(const PatchingResult& res, const std::vector<std::string>& positions) {
  views::HeatmapData d;
  d.rowName.clear();  // the default names a pattern's query axis
  const auto& axes = res.gridAxes;
  std::vector<std::string> rows{""};
  for (size_t a = 0; a + 1 < axes.size(); ++a) {
    std::vector<std::string> next;
    for (const std::string& prefix : rows)
      for (const std::string& label : sweepAxisLabels(axes[a], positions)) next.push_back(prefix.empty() ? label : prefix + " " + label);
    rows = std::move(next);
    d.rowName += (a ? " " : "") + q(axes[a].name == "pos" ? "position" : axes[a].name);
  }
  for (const std::string& r : rows) d.rowLabels << q(r);
  for (const std::string& c : sweepAxisLabels(axes.back(), positions)) d.colLabels << q(c);
  d.colName = q(axes.back().name == "pos" ? "position" : axes.back().name);
  d.rows = d.rowLabels.size(), d.cols = d.colLabels.size();
  return d;
}
}  // namespace

std::pair<QStringList, QStringList> SessionController::sweepKinds() {
  QStringList names, summaries;
  for (SweepKind k : headlab::sweepKinds()) names << q(k.layout().name), summaries << q(k.layout().summary);
  return {names, summaries};
}

SessionController::SessionController(QObject* parent) : QObject(parent), m_worker(std::make_unique<Worker>()) {
  m_context = new QObject;
  m_context->moveToThread(&m_thread);
  connect(&m_thread, &QThread::finished, m_context, &QObject::deleteLater);
  m_thread.setObjectName("headlab-worker");
  m_thread.start();
}

SessionController::~SessionController() {
  m_thread.quit();
  m_thread.wait();
}

void SessionController::waitIdle() {
  while (m_pending.load() > 0) {
    QCoreApplication::processEvents(QEventLoop::AllEvents, 5);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  QCoreApplication::processEvents();
}

void SessionController::setDevice(const QString& device, const QString& dtype) {
  m_device = device;
  m_dtype = dtype;
}

void SessionController::openModel(const QString& spec, const QString& tokenizer) {
  emit busyChanged(true, tr("loading %1").arg(spec));
  m_cancel = false;
  post([this, spec, tokenizer, device = m_device.toStdString(), dtype = m_dtype.toStdString()] {
    LoadOptions opt;
    opt.tokenizerPath = tokenizer.toStdString();
    opt.device = device, opt.dtype = dtype;
    opt.progress = [this](double f, const std::string& stage) {
      const QString text = QString::fromStdString(stage);
      QMetaObject::invokeMethod(this, [this, f, text] { emit progress(f, text); }, Qt::QueuedConnection);
      return !m_cancel.load();
    };
    SessionOptions so;
    so.load = opt;
    ModelSession opened = openModelSession(spec.toStdString(), so);
    auto& w = *m_worker;
    w.runner.reset();
    w.loaded = std::move(opened.loaded);
    w.vlm = std::move(opened.vlm);
    w.pixels = at::Tensor();
    w.vhr.clear();
    w.runner = std::make_unique<IncrementalRunner>(*w.model());
    w.ivs.clear();
    w.layer = 0;
    const auto& c = w.model()->config();
    views::ModelSummary s;
    s.source = q(w.loaded.source);
    s.device = q(w.model()->device().str() + ", " + std::string(c10::toString(w.model()->dtype())));
    s.format = q(w.loaded.format);
    nlohmann::json j = configToJson(c);
    j["tokenizer"] = w.loaded.tokenizer->kind();
    if (w.vlm) {
      const auto& vc = w.vlm->visionConfig();
      j["vision"] = {{"image_size", vc.image_size}, {"patch_size", vc.patch_size}, {"image_tokens", vc.imageTokens()},
                     {"vision_layers", w.vlm->vision().config().n_layers}, {"image_token_id", vc.image_token_id}};
      s.imageSize = static_cast<int>(vc.image_size);
      s.patchSide = static_cast<int>(vc.image_size / vc.patch_size);
      for (const auto& n : w.vlm->vision().hooks().names()) s.hookNames << q("vision." + n);
    }
    s.configJson = q(j.dump(2));
    for (const auto& n : w.model()->hooks().names()) s.hookNames << q(n);
    s.layers = static_cast<int>(c.n_layers), s.heads = static_cast<int>(c.n_heads), s.kvHeads = static_cast<int>(c.n_kv_heads);
    QMetaObject::invokeMethod(this, [this, s] {
      m_modelOpen = true;
      emit modelOpened(s);
      emit busyChanged(false, {});
    }, Qt::QueuedConnection);
  });
}

void SessionController::runPrompt(const QString& text) {
  emit busyChanged(true, tr("running prompt"));
  post([this, text] {
    auto& w = *m_worker;
    if (!w.runner) throw InputError("open a model first");
    if (text.isEmpty()) throw InputError("empty prompt: type some text first");
    const Tokenizer& tok = *w.loaded.tokenizer;
    std::vector<int64_t> ids = tok.encode(text.toStdString(), true);
    at::Tensor embeds;  // layer 0's input for an image prompt
    int imageBegin = -1, imageEnd = -1;
    if (w.vlm) {
      const int64_t image = w.vlm->visionConfig().image_token_id;
      if (w.pixels.defined()) ids = withImagePlaceholder(ids, image, tok.bos());
      w.promptIds = ids;
      VlmInput in = w.vlm->prepare(ids, w.pixels);
      ids = in.ids, embeds = in.embeds;
      imageBegin = static_cast<int>(in.imageBegin), imageEnd = static_cast<int>(in.imageEnd);
      w.embeds = in.embeds, w.imageBegin = in.imageBegin, w.imageEnd = in.imageEnd;
      w.runner->setPrompt(ids, embeds);
    } else {
      w.runner->setPrompt(ids);
    }
    // Mean-ablation sources: each head's z averaged over this prompt's positions.
    HookedTransformer& model = *w.model();
    const int L = static_cast<int>(model.config().n_layers), H = static_cast<int>(model.config().n_heads);
    w.meanZ.assign(L, at::Tensor());
    {
      std::vector<HookHandle> caps;
      for (int l = 0; l < L; ++l)
        caps.push_back(model.hooks().add(model.hooks().idOf(l, LayerHook::Z),
                                         [&w, l](at::Tensor& z, const HookContext&) { w.meanZ[l] = z.mean(1, true); }));
      if (embeds.defined()) model.forwardFrom(0, embeds);
      else model.forward(at::tensor(ids, at::kLong).unsqueeze(0));
    }
    w.pieces.clear();
    QVector<int> qids;
    for (const std::string& label : positionLabels(tok, ids, w.vlm ? &w.vlm->visionConfig() : nullptr, imageBegin, imageEnd))
      w.pieces << q(label);  // image positions as "img r,c" by patch
    for (int64_t id : ids) qids << static_cast<int>(id);
    // Head scores from the baseline patterns: attention to the first token (rows 1.., since row 0
    // can only see itself) and mean row entropy.
    views::HeadScores first = grid(L, H, "attention to first token"), entropy = grid(L, H, "attention entropy");
    for (int l = 0; l < L; ++l) {
      at::Tensor p = w.runner->baselinePattern(l).to(at::kCPU, at::kFloat);  // [head, q, k]
      at::Tensor f = p.size(1) > 1 ? p.slice(1, 1).select(2, 0).mean(1) : p.select(2, 0).mean(1);
      at::Tensor e = -(p * (p.clamp_min(1e-12)).log()).sum(-1).mean(-1);
      for (int h = 0; h < H; ++h) {
        first.values[l * H + h] = f[h].item<float>();
        entropy.values[l * H + h] = e[h].item<float>();
      }
    }
    const QStringList pieces = w.pieces;
    // The overlay's span: the patch positions (a kept class token is not on the grid).
    const int side = w.vlm ? static_cast<int>(w.vlm->visionConfig().image_size / w.vlm->visionConfig().patch_size) : 0;
    const int firstPatch = w.vlm && !w.vlm->visionConfig().drop_class_token ? imageBegin + 1 : imageBegin;
    const views::ImageSpan span{firstPatch, imageEnd, side};
    QMetaObject::invokeMethod(this, [this, pieces, qids, first, entropy, span] {
      emit promptReady(pieces, qids);
      emit imageSpanReady(span);
      emit headScoresReady(first, entropy);
    }, Qt::QueuedConnection);
    if (w.vhrOn) computeVhr();
    QElapsedTimer t;
    t.start();
    int from = w.runner->update(w.allInterventions());
    emitPredictions(from, t.nsecsElapsed() / 1e6);
    emitLayer();
    QMetaObject::invokeMethod(this, [this] { emit busyChanged(false, {}); }, Qt::QueuedConnection);
  });
}

void SessionController::setEdits(const std::vector<views::HeadEdit>& edits) {
  const uint64_t generation = ++m_editGeneration;
  post([this, edits, generation] {
    auto& w = *m_worker;
    w.ivs = w.toInterventions(edits);
    if (generation != m_editGeneration.load()) return;  // a newer edit is queued: it wins
    if (!w.runner || w.runner->tokens().empty()) return;
    QElapsedTimer t;
    t.start();
    int from = w.runner->update(w.allInterventions());
    emitPredictions(from, t.nsecsElapsed() / 1e6);
    emitLayer();
  });
}

void SessionController::selectLayer(int layer) {
  post([this, layer] {
    auto& w = *m_worker;
    if (!w.runner || w.runner->tokens().empty()) return;
    if (layer < 0 || layer >= w.model()->config().n_layers) throw InputError("layer " + std::to_string(layer) + " out of range");
    w.layer = layer;
    emitLayer();
  });
}

void SessionController::setTarget(const QString& token) {
  post([this, token] {
    auto& w = *m_worker;
    if (!w.runner) return;
    w.targetId = -1;
    if (!token.isEmpty()) {
      try {
        w.targetId = resolveSingleToken(*w.loaded.tokenizer, token.toStdString());
      } catch (const InputError&) {
        w.targetId = -1;  // the panel says "not a single token"
      }
    }
    if (!w.runner->tokens().empty()) emitPredictions(w.runner->lastStartLayer(), 0);
  });
}

void SessionController::listProbes() {
  post([this] {
    std::vector<views::ProbeInfo> out;
    auto& reg = plugins::ProbeRegistry::instance();
    for (const auto& name : reg.names()) {
      auto p = reg.create(name);
      nlohmann::json defaults = nlohmann::json::object();
      for (const auto& param : p->parameters()) defaults[param.name] = param.defaultValue;
      out.push_back({q(name), q(p->description()), q(defaults.dump(1))});
    }
    QMetaObject::invokeMethod(this, [this, out] { emit probesListed(out); }, Qt::QueuedConnection);
  });
}

void SessionController::runProbe(const QString& name, const QString& paramsJson) {
  m_cancel = false;
  post([this, name, paramsJson] {
    auto& w = *m_worker;
    if (!w.model()) throw InputError("open a model first");
    nlohmann::json params;
    try {
      params = nlohmann::json::parse(paramsJson.toStdString());
    } catch (const nlohmann::json::exception&) {
      throw InputError("probe parameters are not valid JSON");
    }
    auto probe = plugins::ProbeRegistry::instance().create(name.toStdString());
    plugins::ProbeContext ctx{*w.model(), w.loaded.tokenizer.get(), params, [this](double f, const std::string& stage) {
                                const QString text = QString::fromStdString(stage);
                                QMetaObject::invokeMethod(this, [this, f, text] { emit probeProgress(f, text); }, Qt::QueuedConnection);
                                return !m_cancel.load();
                              }};
    if (w.vlm) ctx.vlm = w.vlm.get(), ctx.pixels = &w.pixels;
    nlohmann::json r;
    try {
      r = probe->run(ctx);
    } catch (const CancelledError&) {
      QMetaObject::invokeMethod(this, [this] { emit probeCancelled(); }, Qt::QueuedConnection);
      return;
    }
    views::HeadScores grid;
    if (r.contains("grid")) {
      const auto& g = r["grid"];
      grid.layers = g["layers"], grid.heads = g["heads"];
      grid.name = q(name.toStdString() + ": " + g["name"].get<std::string>());
      for (const auto& v : g["values"]) grid.values.push_back(v.get<float>());
    }
    // The probe's own headline and curve: nothing here knows which probe ran.
    const plugins::ProbeSummary told = probe->summarize(r);
    const QString summary = q(told.line);
    std::vector<double> xs, ys;
    QString title, xLabel, yLabel;
    if (!told.curves.empty()) {
      const plugins::ProbeCurve& c = told.curves.front();
      xs = c.x, ys = c.y, title = q(c.title), xLabel = q(c.xLabel), yLabel = q(c.yLabel);
    }
    QMetaObject::invokeMethod(this, [this, title, xs, ys, xLabel, yLabel] { emit probeCurve(title, xs, ys, xLabel, yLabel); },
                              Qt::QueuedConnection);
    const QString json = q(r.dump());
    QMetaObject::invokeMethod(this, [this, name, grid, summary, json] { emit probeFinished(name, grid, summary, json); }, Qt::QueuedConnection);
  });
}

namespace {
std::vector<std::string> matchHooks(const HookRegistry& hooks, const QString& globs) {
  std::vector<std::string> out;
  for (const QString& g : globs.split(',', Qt::SkipEmptyParts))
    for (auto& h : hooks.match(g.trimmed().toStdString())) out.push_back(h);
  return out;
}
}  // namespace

void SessionController::estimateTrace(const QString& hooksGlob) {
  post([this, hooksGlob] {
    auto& w = *m_worker;
    if (!w.runner || w.runner->tokens().empty()) return;
    auto hooks = matchHooks(w.model()->hooks(), hooksGlob);
    const qint64 bytes = static_cast<qint64>(estimateCaptureBytes(*w.model(), hooks, static_cast<int64_t>(w.runner->tokens().size())));
    const int n = static_cast<int>(hooks.size());
    QMetaObject::invokeMethod(this, [this, bytes, n] { emit captureEstimate(bytes, n); }, Qt::QueuedConnection);
  });
}

void SessionController::exportTrace(const QString& path, const QString& hooksGlob, bool force) {
  post([this, path, hooksGlob, force] {
    auto& w = *m_worker;
    if (!w.runner || w.runner->tokens().empty()) throw InputError("run a prompt before exporting a trace");
    HookedTransformer& model = *w.model();
    auto hooks = matchHooks(model.hooks(), hooksGlob);
    TraceOptions o;
    o.force = force;
    TraceWriter writer(path.toStdString(), o);
    writer.writeModel(model.config(), w.loaded.source, w.loaded.format);
    std::vector<std::string> pieces;
    for (const QString& p : w.pieces) pieces.push_back(p.toStdString());
    writer.writeInputs(w.runner->tokens(), pieces);
    if (w.vlm && w.pixels.defined() && w.imageBegin >= 0) writer.writeImage(w.pixels, w.imageBegin, w.imageEnd);
    nlohmann::json ivs = nlohmann::json::array();
    for (const auto& iv : w.allInterventions()) ivs.push_back(iv.describe());
    writer.writeInterventions(ivs);
    {
      // The trace shows the run as the window shows it: with the current interventions.
      std::vector<HookHandle> handles = install(model, w.allInterventions());
      captureToTrace(model, w.runner->tokens(), hooks, writer, {}, w.vlm ? w.embeds : at::Tensor());
    }
    writer.commit();
    const qint64 bytes = static_cast<qint64>(writer.bytesWritten());
    QMetaObject::invokeMethod(this, [this, path, bytes] { emit traceExported(path, bytes); }, Qt::QueuedConnection);
  });
}

void SessionController::runPatching(const views::PatchingRequestView& v) {
  // The corrupted image is read here (Qt, GUI thread); its preprocessing runs on the worker.
  RgbImage corruptedImage;
  if (!v.corruptedImage.isEmpty()) {
    QImage image(v.corruptedImage);
    if (image.isNull()) {
      emit failed(tr("%1: cannot read the corrupted image").arg(v.corruptedImage));
      return;
    }
    corruptedImage = rgbImage(image);
  }
  m_cancel = false;
  post([this, v, corruptedImage] {
    auto& w = *m_worker;
    if (!w.model()) throw InputError("open a model first");
    const Tokenizer& tok = *w.loaded.tokenizer;
    PatchingRequest r;
    r.clean = tok.encode(v.clean.toStdString(), true);
    r.corrupted = tok.encode((w.vlm && v.corrupted.isEmpty() ? v.clean : v.corrupted).toStdString(), true);
    int64_t imageBegin = -1, imageEnd = -1;  // the clean prompt's image positions
    if (w.vlm) {
      // Clean: the window's image; corrupted: the chosen file, or the same image (the text differs).
      const at::Tensor corruptedPixels = corruptedImage.width > 0
          ? clipPreprocess(corruptedImage.bytes, corruptedImage.width, corruptedImage.height, w.vlm->visionConfig()).to(w.model()->device())
          : w.pixels;
      if (corruptedPixels.defined() != w.pixels.defined())
        throw InputError("load the clean image first (Image dock): the corrupted image is patched into it");
      const int64_t image = w.vlm->visionConfig().image_token_id;
      if (w.pixels.defined()) {
        r.clean = withImagePlaceholder(r.clean, image, tok.bos());
        r.corrupted = withImagePlaceholder(r.corrupted, image, tok.bos());
      }
      VlmInput clean = w.vlm->prepare(r.clean, w.pixels), corrupted = w.vlm->prepare(r.corrupted, corruptedPixels);
      r.clean = clean.ids, r.corrupted = corrupted.ids;
      r.cleanEmbeds = clean.embeds, r.corruptedEmbeds = corrupted.embeds;
      imageBegin = clean.imageBegin, imageEnd = clean.imageEnd;
    } else if (corruptedImage.width > 0) {
      throw InputError("the open model has no vision tower: a corrupted image needs a LLaVA folder or demo-vlm");
    }
    r.answer = resolveSingleToken(tok, v.answer.toStdString());
    r.wrong = resolveSingleToken(tok, v.wrong.toStdString());
    r.sweep = sweepKindFromString(v.sweep.toStdString());
    HookedTransformer& model = *w.model();
    // Progress per layer; Cancel (the panel's button) stops the sweep at the next layer.
    auto progress = [this](double f, const std::string& stage) {
      const QString text = QString::fromStdString(stage);
      QMetaObject::invokeMethod(this, [this, f, text] { emit patchingProgress(f, text); }, Qt::QueuedConnection);
      return !m_cancel.load();
    };
    PatchingResult res;
    try {
      res = v.method == "attribution" ? patchAttribution(model, r, progress) : patchBatched(model, r, progress);
    } catch (const CancelledError&) {
      QMetaObject::invokeMethod(this, [this] { emit patchingCancelled(); }, Qt::QueuedConnection);
      return;
    }
    at::Tensor g = res.grid.to(at::kCPU, at::kFloat).contiguous();
    const int64_t L = model.config().n_layers, H = model.config().n_heads;
    const auto positions = positionLabels(tok, r.clean, w.vlm ? &w.vlm->visionConfig() : nullptr, imageBegin, imageEnd);
    views::HeatmapData d = sweepHeatmap(res, positions);
    views::HeadScores heads;
    if (res.axes == std::vector<std::string>{"layer", "head"})
      heads = {static_cast<int>(L), static_cast<int>(H), std::vector<float>(g.data_ptr<float>(), g.data_ptr<float>() + g.numel()),
               q("patching (" + res.method + ")"), 0};
    g = g.view({d.rows, d.cols});
    d.values.assign(g.data_ptr<float>(), g.data_ptr<float>() + g.numel());
    const float hi = std::max(1.0f, g.max().item<float>()), lo = std::min(0.0f, g.min().item<float>());
    d.minValue = lo, d.maxValue = hi;
    d.valueLabel = "0 = corrupted, 1 = clean";  // short: the colour scale is as tall as the map
    d.title = QString("%1 patching, %2").arg(v.sweep, q(res.method));
    const QString summary = QString("logit(%1) - logit(%2): clean %3, corrupted %4; %5 forwards")
                                .arg(v.answer, v.wrong).arg(res.cleanMetric, 0, 'f', 3).arg(res.corruptedMetric, 0, 'f', 3).arg(res.forwards) +
                          (res.warnings.empty() ? QString() : QString("\nwarning: %1").arg(q(res.warnings.front())));
    QMetaObject::invokeMethod(this, [this, d, heads, summary] { emit patchingFinished(d, heads, summary); }, Qt::QueuedConnection);
  });
}

void SessionController::emitLayer() {
  // Worker thread: tensors become plain HeatmapData here, and only here.
  auto& w = *m_worker;
  at::Tensor p = w.runner->pattern(w.layer).to(at::kCPU, at::kFloat).contiguous();  // [head, q, k], read by the views
  const int H = static_cast<int>(p.size(0)), T = static_cast<int>(p.size(1));
  std::vector<views::HeatmapData> heads;
  for (int h = 0; h < H; ++h) {
    views::HeatmapData d;
    d.rows = d.cols = T;
    const float* src = p[h].data_ptr<float>();
    d.values.assign(src, src + static_cast<size_t>(T) * T);
    d.rowLabels = d.colLabels = w.pieces;
    d.title = QString("L%1 H%2").arg(w.layer).arg(h);
    heads.push_back(std::move(d));
  }
  const int layer = w.layer;
  QMetaObject::invokeMethod(this, [this, layer, heads] { emit layerPatternsReady(layer, heads); }, Qt::QueuedConnection);
}

void SessionController::emitPredictions(int from, double ms) {
  auto& w = *m_worker;
  at::Tensor base = at::softmax(w.runner->baselineLogits()[-1].to(at::kCPU, at::kFloat), -1);
  at::Tensor now = at::softmax(w.runner->logits()[-1].to(at::kCPU, at::kFloat), -1);
  std::vector<int64_t> ids;
  auto add = [&](const at::Tensor& probs, int k) {
    at::Tensor idx = std::get<1>(probs.topk(std::min<int64_t>(k, probs.size(0))));
    for (int64_t i = 0; i < idx.size(0); ++i) {
      int64_t id = idx[i].item<int64_t>();
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
  };
  add(base, 10);
  add(now, 5);
  std::vector<views::TokenProb> top;
  for (int64_t id : ids)
    top.push_back({static_cast<int>(id), q(w.loaded.tokenizer->tokenString(id)), base[id].item<float>(), now[id].item<float>()});
  std::stable_sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.intervened > b.intervened; });
  views::TokenProb target;
  if (w.targetId >= 0)
    target = {static_cast<int>(w.targetId), q(w.loaded.tokenizer->tokenString(w.targetId)), base[w.targetId].item<float>(),
              now[w.targetId].item<float>()};
  QMetaObject::invokeMethod(this, [this, top, target, from, ms] { emit predictionsReady(top, target, from, ms); }, Qt::QueuedConnection);
}

}  // namespace headlab::app
