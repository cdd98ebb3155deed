// Owns the model and runs every torch computation on its own worker thread. The GUI calls the
// request methods (any time, never blocking) and receives results as signals on the GUI thread.
// Interactive requests follow "newest wins": a request superseded before it starts is dropped.
#pragma once
#include <QImage>
#include <QObject>
#include <QThread>
#include <atomic>
#include <memory>
#include <vector>

#include "headlab/views/patching_panel.h"
#include "headlab/views/probe_panel.h"
#include "headlab/views/view_data.h"

namespace headlab::app {

class SessionController : public QObject {
  Q_OBJECT
 public:
  explicit SessionController(QObject* parent = nullptr);
  ~SessionController() override;

  // The patching sweep kinds of the core's table: names and one-line summaries (no torch runs).
  static std::pair<QStringList, QStringList> sweepKinds();

  void openModel(const QString& spec, const QString& tokenizer = {});
  // Where the models opened from now on run: "cpu" or "cuda[:n]", and the decoder's dtype
  // ("float32", "bfloat16", "float16"). A bad value fails the next open with the reason.
  void setDevice(const QString& device, const QString& dtype = "float32");
  void runPrompt(const QString& text);
  // The position whose next-token logits the logits panel shows (-1: the last).
  void setLogitsPosition(int position);
  // Model ▸ Check: the faithfulness checks of `headlab-cli check` on the window's prompt (its text
  // tokens; at least 2), reported by checksReady.
  void runChecks();
  // The logit lens on the window's prompt (with its edits): lensReady. Direct logit attribution of
  // the followed token (else the top prediction) at the logits panel's position: dlaReady.
  void runLens();
  void runDla();
  void setEdits(const std::vector<views::HeadEdit>& edits);
  void selectLayer(int layer);
  void setTarget(const QString& token);
  // Vision-language models: the image the next prompts hold (answers imageAccepted or failed),
  // or none (text-only prompts). Run the prompt again to see its effect.
  void setImage(const QImage& image);
  void clearImage();
  // VHR (reinforce the vision-aware heads) on or off; the logits panel shows its effect.
  // Answers vhrApplied with the heads chosen, then predictionsReady.
  void setVhr(bool on);
  // Lists the probes of the registry (answers with probesListed).
  void listProbes();
  // Runs a probe on the open model; progress, then probeFinished / probeCancelled / failed.
  void runProbe(const QString& name, const QString& paramsJson);
  // Writes the current run (prompt + interventions) as an HDF5 trace of the hooks matching
  // `hooksGlob` (comma-separated globs); answers traceExported or failed. Never overwrites unless force.
  void exportTrace(const QString& path, const QString& hooksGlob, bool force);
  // Bytes such a trace stores, for the status bar (answers captureEstimate).
  void estimateTrace(const QString& hooksGlob);
  // Runs an activation-patching sweep (exact batched or attribution); answers patchingFinished or failed.
  void runPatching(const headlab::views::PatchingRequestView& request);
  // Asks long work (the demo model's first training) to stop; it reports failed("cancelled").
  void cancel() { m_cancel = true; }
  // Blocks the caller until the worker has drained its queue (tests and shutdown only).
  void waitIdle();
  bool modelOpen() const { return m_modelOpen; }
  bool idle() const { return m_pending.load() == 0; }  // no job queued or running

 signals:
  void modelOpened(const headlab::views::ModelSummary& summary);
  void failed(const QString& message);
  void busyChanged(bool busy, const QString& stage);
  void probesListed(const std::vector<headlab::views::ProbeInfo>& probes);
  void probeProgress(double fraction, const QString& stage);
  // grid: the probe's per-head result; json: the whole result, as the CLI prints it.
  void probeFinished(const QString& name, const headlab::views::HeadScores& grid, const QString& summary, const QString& json);
  void probeCancelled();
  // Just before probeFinished: the result's other head grids (previous- and duplicate-token scores).
  void probeExtraGridsReady(const std::vector<headlab::views::HeadScores>& grids);
  // Just before probeFinished, for probes with a map over the image's patches (look): side x side values.
  void probeImageMap(int side, const std::vector<float>& values, const QString& caption);
  // The probe's curve, when it has one (sinks: Sink_k over key positions; retrieval: NIAH accuracy over depth).
  void probeCurve(const QString& title, const std::vector<double>& xs, const std::vector<double>& ys, const QString& xLabel,
                  const QString& yLabel);
  void traceExported(const QString& path, qint64 bytes);
  // One line per check ("ok  name: detail" or "FAIL  name: detail"), whether all passed, and the
  // number of tokens they ran on.
  void checksReady(const QStringList& lines, bool passed, int tokens);
  // [layer, position] top-1 probabilities with each cell's top tokens in cellTexts.
  void lensReady(const headlab::views::HeatmapData& lens, const QString& summary);
  // [layer, head] direct contributions to the logit, and the decomposition as a line.
  void dlaReady(const headlab::views::HeadScores& heads, const QString& summary);
  // grid: the sweep as a 2-D heatmap (rows: layers, layer.head or component layer); heads: the
  // [layer, head] grid for the head grid's colours (heads sweep only, else empty).
  void patchingFinished(const headlab::views::HeatmapData& grid, const headlab::views::HeadScores& heads, const QString& summary);
  void patchingProgress(double fraction, const QString& stage);
  // Just before patchingFinished: method "both"'s attribution map (empty for the other methods).
  void patchingComparisonReady(const headlab::views::HeatmapData& attribution);
  void patchingCancelled();
  void captureEstimate(qint64 bytes, int hooks);
  // Progress of long work in [0, 1] with its stage text (the demo model's training).
  void progress(double fraction, const QString& stage);
  void promptReady(const QStringList& pieces, const QVector<int>& ids);
  // After promptReady: what the user should know about how the prompt was read (empty: nothing),
  // e.g. words outside the vocabulary that became the unknown token.
  void promptWarning(const QString& warning);
  // After promptReady: where the image's patches are in the prompt (begin = -1 without image).
  void imageSpanReady(const headlab::views::ImageSpan& span);
  void imageAccepted();
  void vhrApplied(bool on, const QString& description);
  void headScoresReady(const headlab::views::HeadScores& firstToken, const headlab::views::HeadScores& entropy);
  // Every head of `layer`, with the current interventions: [head] -> [query, key].
  void layerPatternsReady(int layer, const std::vector<headlab::views::HeatmapData>& heads);
  // Just before predictionsReady: which position they are for ("" = the last, the next token).
  void predictionsPositionChanged(const QString& where);
  void predictionsReady(const std::vector<headlab::views::TokenProb>& top, const headlab::views::TokenProb& target,
                        int recomputedFromLayer, double milliseconds);

 private:
  QString m_device = "cpu", m_dtype = "float32";  // for the next openModel
  struct Worker;
  static const std::vector<int64_t>& textPromptIds(const Worker& w, const char* what);
  template <typename F>
  void post(F&& job);
  void emitLayer();
  void computeVhr();
  void emitPredictions(int from, double ms);

  QThread m_thread;
  QObject* m_context = nullptr;  // lives on m_thread; jobs are queued to it
  std::unique_ptr<Worker> m_worker;
  std::atomic<uint64_t> m_editGeneration{0};
  std::atomic<int> m_pending{0};
  std::atomic<bool> m_cancel{false};
  bool m_modelOpen = false;
};

}  // namespace headlab::app
