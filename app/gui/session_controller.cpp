// torch first: Qt's keywords break torch headers included after them.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "session_controller.h"
#include "session_worker.h"
#include "view_adapters.h"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QRegularExpression>
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
#include "headlab/core/faithfulness.h"
#include "headlab/core/incremental_runner.h"
#include "headlab/core/interventions.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/patching.h"
#include "headlab/core/trace.h"
#include "headlab/core/vision_language.h"
#include "headlab/plugins/probe_plugin.h"

namespace headlab::app {

using adapt::q;

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
    w.session = std::move(opened);
    w.vhr.clear();
    w.runner = std::make_unique<IncrementalRunner>(*w.model());
    w.ivs.clear();
    w.layer = 0;
    const views::ModelSummary s = adapt::modelSummary(w.session);
    QMetaObject::invokeMethod(this, [this, s] {
      m_modelOpen = true;
      emit modelOpened(s);
      emit busyChanged(false, {});
    }, Qt::QueuedConnection);
  });
}

namespace {
// "warning: 2 words are not in the vocabulary and became <unk>: 'green', 'moon'" (empty when none).
QString unknownWordsWarning(const Tokenizer& tok, const QString& text, const std::vector<int64_t>& ids) {
  if (tok.unk() < 0 || std::find(ids.begin(), ids.end(), tok.unk()) == ids.end()) return {};
  QStringList words;
  for (const QString& word : text.split(QRegularExpression("\\s+"), Qt::SkipEmptyParts)) {
    const auto wordIds = tok.encode(word.toStdString(), false);
    if (std::find(wordIds.begin(), wordIds.end(), tok.unk()) != wordIds.end() && !words.contains("'" + word + "'")) words << "'" + word + "'";
  }
  const auto count = std::count(ids.begin(), ids.end(), tok.unk());
  const QString unk = q(tok.tokenString(tok.unk()));
  return QString("warning: %1 token(s) are not in the vocabulary and became %2%3").arg(count).arg(unk)
      .arg(words.isEmpty() ? QString() : ": " + words.mid(0, 8).join(", ") + (words.size() > 8 ? ", …" : ""));
}
}  // namespace

void SessionController::runPrompt(const QString& text) {
  emit busyChanged(true, tr("running prompt"));
  post([this, text] {
    auto& w = *m_worker;
    if (!w.runner) throw InputError("open a model first");
    if (text.isEmpty()) throw InputError("empty prompt: type some text first");
    w.logitsPosition = -1;  // a new prompt: the next token after it
    const Tokenizer& tok = w.tokenizer();
    std::vector<int64_t> ids = tok.encode(text.toStdString(), true);
    // The estimate before the run (the runner refuses a prompt over its budget before any work).
    const double mb = IncrementalRunner::estimateBytes(w.model()->config(), static_cast<int64_t>(ids.size())) / 1e6;
    const QString busy = tr("running prompt: %1 tokens, about %2 MB of attention maps").arg(ids.size()).arg(mb, 0, 'f', 0);
    QMetaObject::invokeMethod(this, [this, busy] { emit busyChanged(true, busy); }, Qt::QueuedConnection);
    if (w.session.vlm) {
      w.promptIds = ids;
      const VlmInput in = w.session.prepare(ids);  // ids: the image's positions spliced in
      w.embeds = in.embeds, w.imageBegin = in.imageBegin, w.imageEnd = in.imageEnd;
      w.runner->setPrompt(ids, in.embeds);
    } else {
      w.embeds = at::Tensor(), w.imageBegin = w.imageEnd = -1;
      w.runner->setPrompt(ids);
    }
    // Mean-ablation sources: each head's z averaged over this prompt's positions.
    HookedTransformer& model = *w.model();
    const int L = static_cast<int>(model.config().n_layers);
    w.meanZ.assign(L, at::Tensor());
    {
      std::vector<HookHandle> caps;
      for (int l = 0; l < L; ++l)
        caps.push_back(model.hooks().add(model.hooks().idOf(l, LayerHook::Z),
                                         [&w, l](at::Tensor& z, const HookContext&) { w.meanZ[l] = z.mean(1, true); }));
      if (w.embeds.defined()) model.forwardFrom(0, w.embeds);
      else model.forward(at::tensor(ids, at::kLong).unsqueeze(0));
    }
    w.pieces.clear();
    QVector<int> qids;
    for (const std::string& label : positionLabels(tok, ids, w.visionConfig(), w.imageBegin, w.imageEnd))
      w.pieces << q(label);  // image positions as "img r,c" by patch
    for (int64_t id : ids) qids << static_cast<int>(id);
    std::vector<at::Tensor> patterns;
    for (int l = 0; l < L; ++l) patterns.push_back(w.runner->baselinePattern(l));
    const auto [first, entropy] = adapt::baselineHeadScores(patterns);
    const QStringList pieces = w.pieces;
    const views::ImageSpan span = adapt::imageSpan(w.visionConfig(), w.imageBegin, w.imageEnd);
    const QString warning = unknownWordsWarning(tok, text, ids);
    QMetaObject::invokeMethod(this, [this, pieces, qids, first = first, entropy = entropy, span, warning] {
      emit promptReady(pieces, qids);
      emit promptWarning(warning);
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
        w.targetId = resolveSingleToken(w.tokenizer(), token.toStdString());
      } catch (const InputError&) {
        w.targetId = -1;  // the panel says "not a single token"
      }
    }
    if (!w.runner->tokens().empty()) emitPredictions(w.runner->lastStartLayer(), 0);
  });
}

void SessionController::setLogitsPosition(int position) {
  post([this, position] {
    auto& w = *m_worker;
    w.logitsPosition = position;
    if (w.runner && !w.runner->tokens().empty()) emitPredictions(w.runner->lastStartLayer(), 0);
  });
}

void SessionController::runChecks() {
  emit busyChanged(true, tr("checking the model"));
  post([this] {
    auto& w = *m_worker;
    if (!w.runner || w.runner->tokens().empty()) throw InputError("run a prompt first: the checks run on its tokens");
    // A vision-language prompt: its text tokens (the decoder's checks need no image).
    const std::vector<int64_t> ids = w.session.vlm ? w.promptIds : w.runner->tokens();
    const auto checks = runFaithfulnessChecks(*w.model(), ids);
    QStringList lines;
    bool passed = true;
    for (const auto& c : checks) {
      lines << QString("%1  %2: %3").arg(c.passed ? "ok" : "FAIL", q(c.name), q(c.detail));
      passed = passed && c.passed;
    }
    const int n = static_cast<int>(ids.size());
    QMetaObject::invokeMethod(this, [this, lines, passed, n] {
      emit checksReady(lines, passed, n);
      emit busyChanged(false, {});
    }, Qt::QueuedConnection);
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
    plugins::ProbeContext ctx{*w.model(), &w.tokenizer(), params, [this](double f, const std::string& stage) {
                                const QString text = QString::fromStdString(stage);
                                QMetaObject::invokeMethod(this, [this, f, text] { emit probeProgress(f, text); }, Qt::QueuedConnection);
                                return !m_cancel.load();
                              }};
    if (w.session.vlm) ctx.vlm = w.session.vlm.get(), ctx.pixels = &w.session.pixels;
    nlohmann::json r;
    try {
      r = probe->run(ctx);
    } catch (const CancelledError&) {
      QMetaObject::invokeMethod(this, [this] { emit probeCancelled(); }, Qt::QueuedConnection);
      return;
    }
    const views::HeadScores grid = adapt::probeGrid(name.toStdString(), r);
    const std::vector<views::HeadScores> extra = adapt::probeExtraGrids(name.toStdString(), r);
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
    // A map over the image's patch grid (look): shown on the image.
    std::vector<float> map;
    int side = 0;
    QString mapCaption;
    if (r.contains("map") && r["map"].is_object() && r["map"].value("side", 0) > 0) {
      side = r["map"]["side"];
      for (const auto& v : r["map"]["values"]) map.push_back(v.get<float>());
      mapCaption = QString("%1: layer %2, mean of the heads (the probe's map)").arg(name).arg(r["map"].value("layer", -1));
    }
    QMetaObject::invokeMethod(this, [this, name, grid, extra, summary, json, side, map, mapCaption] {
      emit probeExtraGridsReady(extra);
      if (side > 0) emit probeImageMap(side, map, mapCaption);
      emit probeFinished(name, grid, summary, json);
    }, Qt::QueuedConnection);
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
    o.provenance.commandLine = "headlab (window): File > Export trace, hooks " + hooksGlob.toStdString();
    const auto stored = model.weights().embed.scalar_type();
    o.provenance.dtype = stored == at::kBFloat16 ? "bfloat16" : stored == at::kHalf ? "float16" : "float32";
    o.provenance.device = model.device().str();
    TraceWriter writer(path.toStdString(), o);
    writer.writeModel(model.config(), w.session.loaded.source, w.session.loaded.format);
    std::vector<std::string> pieces;
    for (const QString& p : w.pieces) pieces.push_back(p.toStdString());
    writer.writeInputs(w.runner->tokens(), pieces);
    if (w.session.vlm && w.session.pixels.defined() && w.imageBegin >= 0) writer.writeImage(w.session.pixels, w.imageBegin, w.imageEnd);
    nlohmann::json ivs = nlohmann::json::array();
    for (const auto& iv : w.allInterventions()) ivs.push_back(iv.describe());
    writer.writeInterventions(ivs);
    {
      // The trace shows the run as the window shows it: with the current interventions.
      std::vector<HookHandle> handles = install(model, w.allInterventions());
      model.clearAttentionUsed();
      captureToTrace(model, w.runner->tokens(), hooks, writer, {}, w.embeds);
      writer.noteAttention(model.attentionUsed());
    }
    writer.commit();
    const qint64 bytes = static_cast<qint64>(writer.bytesWritten());
    QMetaObject::invokeMethod(this, [this, path, bytes] { emit traceExported(path, bytes); }, Qt::QueuedConnection);
  });
}

namespace {
// "4.2" -> {4, 2} within the model; a clear error otherwise.
std::pair<int, int> receiverHead(const QString& text, const ModelConfig& c) {
  bool okL = false, okH = false;
  const int l = text.section('.', 0, 0).toInt(&okL), h = text.section('.', 1, 1).toInt(&okH);
  if (!okL || !okH || text.count('.') != 1)
    throw InputError("path patching needs a receiver head as LAYER.HEAD (e.g. 3.1), got '" + text.toStdString() + "'");
  if (l < 1 || l >= c.n_layers || h < 0 || h >= c.n_heads)
    throw InputError("receiver " + text.toStdString() + ": layer must be in [1, " + std::to_string(c.n_layers) + ") (its senders are earlier) and head in [0, " +
                     std::to_string(c.n_heads) + ")");
  return {l, h};
}
}  // namespace

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
    const Tokenizer& tok = w.tokenizer();
    PatchingRequest r;
    r.clean = tok.encode(v.clean.toStdString(), true);
    r.corrupted = tok.encode((w.session.vlm && v.corrupted.isEmpty() ? v.clean : v.corrupted).toStdString(), true);
    int64_t imageBegin = -1, imageEnd = -1;  // the clean prompt's image positions
    if (w.session.vlm) {
      // Clean: the window's image; corrupted: the chosen file, or the same image (the text differs).
      const at::Tensor& pixels = w.session.pixels;
      const at::Tensor corruptedPixels = corruptedImage.width > 0
          ? clipPreprocess(corruptedImage.bytes, corruptedImage.width, corruptedImage.height, *w.visionConfig()).to(w.model()->device())
          : pixels;
      if (corruptedPixels.defined() != pixels.defined())
        throw InputError("load the clean image first (Image dock): the corrupted image is patched into it");
      const VlmInput clean = w.session.prepare(r.clean), corrupted = w.session.prepare(r.corrupted, corruptedPixels);
      r.cleanEmbeds = clean.embeds, r.corruptedEmbeds = corrupted.embeds;
      imageBegin = clean.imageBegin, imageEnd = clean.imageEnd;
    } else if (corruptedImage.width > 0) {
      throw InputError("the open model has no vision tower: a corrupted image needs a LLaVA folder or demo-vlm");
    }
    r.answer = resolveSingleToken(tok, v.answer.toStdString());
    r.wrong = resolveSingleToken(tok, v.wrong.toStdString());
    const bool path = v.sweep == "path";
    if (!path) r.sweep = sweepKindFromString(v.sweep.toStdString());
    r.direction = v.noising ? PatchDirection::Noising : PatchDirection::Denoising;
    HookedTransformer& model = *w.model();
    // The window's edits, installed for the sweep's every run when asked (removed when it ends).
    const std::vector<Intervention> edits = w.allInterventions();
    const std::vector<HookHandle> installed = v.applyEdits ? install(model, edits) : std::vector<HookHandle>{};
    // Progress per layer; Cancel (the panel's button) stops the sweep at the next layer.
    auto progress = [this](double f, const std::string& stage) {
      const QString text = QString::fromStdString(stage);
      QMetaObject::invokeMethod(this, [this, f, text] { emit patchingProgress(f, text); }, Qt::QueuedConnection);
      return !m_cancel.load();
    };
    PatchingResult res, attribution;
    try {
      if (path) {
        const auto [layer, head] = receiverHead(v.receiver, model.config());
        res = patchPath(model, r, layer, head, pathInputFromString(v.input.toStdString()), progress);
      } else {
        res = v.method == "attribution" ? patchAttribution(model, r, progress) : patchBatched(model, r, progress);
        if (v.method == "both") attribution = patchAttribution(model, r, progress);
      }
    } catch (const CancelledError&) {
      QMetaObject::invokeMethod(this, [this] { emit patchingCancelled(); }, Qt::QueuedConnection);
      return;
    }
    const auto positions = positionLabels(tok, r.clean, w.visionConfig(), imageBegin, imageEnd);
    adapt::PatchingViews pv = adapt::patchingViews(res, positions, v.sweep, v.answer, v.wrong);
    views::HeatmapData comparison;
    if (attribution.grid.defined()) {
      comparison = adapt::patchingViews(attribution, positions, v.sweep, v.answer, v.wrong).map;
      const at::Tensor pair = at::stack({res.grid.flatten().to(at::kCPU, at::kDouble), attribution.grid.flatten().to(at::kCPU, at::kDouble)});
      pv.summary += QString("\nattribution vs exact: Pearson r = %1 over %2 cells").arg(at::corrcoef(pair)[0][1].item<double>(), 0, 'f', 3).arg(pair.size(1));
    }
    // Say whether the window's edits were in the sweep.
    if (!edits.empty())
      pv.summary += v.applyEdits ? QString("\nthe window's %1 head edit(s) are applied in every run").arg(edits.size())
                                 : QString("\nnote: the sweep runs the unedited model; the window's %1 head edit(s) are not applied").arg(edits.size());
    QMetaObject::invokeMethod(this, [this, pv, comparison] {
      emit patchingComparisonReady(comparison);
      emit patchingFinished(pv.map, pv.heads, pv.summary);
    }, Qt::QueuedConnection);
  });
}

void SessionController::emitLayer() {
  auto& w = *m_worker;
  std::vector<views::HeatmapData> heads = adapt::layerPatterns(w.runner->pattern(w.layer), w.layer, w.pieces);
  const int layer = w.layer;
  QMetaObject::invokeMethod(this, [this, layer, heads] { emit layerPatternsReady(layer, heads); }, Qt::QueuedConnection);
}

// The logits panel's position: the last one from the runner's cached logits; another one (a token
// chip selected) from two full forwards, unedited and edited, read at that row.
void SessionController::emitPredictions(int from, double ms) {
  auto& w = *m_worker;
  const int64_t T = static_cast<int64_t>(w.runner->tokens().size());
  const int64_t pos = w.logitsPosition >= 0 && w.logitsPosition < T - 1 ? w.logitsPosition : T - 1;
  at::Tensor baseline = w.runner->baselineLogits()[-1], edited = w.runner->logits()[-1];
  if (pos != T - 1) {
    HookedTransformer& model = *w.model();
    auto run = [&] {
      return w.embeds.defined() ? model.forwardFrom(0, w.embeds) : model.forward(at::tensor(w.runner->tokens(), at::kLong).unsqueeze(0));
    };
    baseline = run()[0][pos];
    const std::vector<HookHandle> installed = install(model, w.allInterventions());
    edited = run()[0][pos];
  }
  adapt::Predictions p = adapt::predictions(baseline, edited, w.tokenizer(), w.targetId);
  const QString where = pos == T - 1 ? QString() : QString("after '%1' (position %2)").arg(w.pieces.value(static_cast<int>(pos))).arg(pos);
  QMetaObject::invokeMethod(this, [this, p, from, ms, where] {
    emit predictionsPositionChanged(where);
    emit predictionsReady(p.top, p.target, from, ms);
  }, Qt::QueuedConnection);
}

}  // namespace headlab::app
