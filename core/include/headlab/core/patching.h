// Activation patching (Meng et al.; Wang et al.; Heimersheim & Nanda) and attribution patching
// (Nanda), PROBES.md §5. The metric is the logit difference logit(answer) - logit(wrong) at the
// last position, normalised so that 0 = the corrupted run and 1 = the clean run.
//
// The batched engine puts patches on the batch dimension and starts every patched run at the
// patched layer from the cached residual stream, so earlier layers are never recomputed.
// Thread: runs on the caller's thread; `progress` returning false cancels (CancelledError).
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "headlab/core/hooks.h"
#include "headlab/core/progress.h"

namespace headlab {

class HookedTransformer;

struct SweepLayout;

// A sweep kind is one row of the layout table (core/src/patching/sweep_layouts.cpp), compared by
// identity. The four named kinds are the classic ones; every row is reachable by name.
class SweepKind {
 public:
  constexpr explicit SweepKind(const SweepLayout* layout) : m_layout(layout) {}
  const SweepLayout& layout() const { return *m_layout; }
  bool operator==(SweepKind o) const { return m_layout == o.m_layout; }
  bool operator!=(SweepKind o) const { return m_layout != o.m_layout; }

  static const SweepKind Heads;     // every head's z, all positions          -> [layer, head]
  static const SweepKind HeadPos;   // every head's z at one position          -> [layer, head, pos]
  static const SweepKind ResidPos;  // resid_pre of a layer at one position    -> [layer, pos]
  static const SweepKind LayerPos;  // attn_out and mlp_out at one position    -> [component(attn, mlp), layer, pos]

 private:
  const SweepLayout* m_layout;
};

// The sizes a layout is laid out over.
struct SweepShape {
  int64_t layers = 0, heads = 0, kvHeads = 0, positions = 0;
};

// One axis of a sweep's grid. `labels` names its entries when they are not numbered (components);
// otherwise sweepAxisLabels numbers them by the axis name (L3, H2, KV1) or uses the token labels.
struct SweepAxis {
  std::string name;  // "layer", "head", "kv_head", "pos", "component"
  int64_t size = 0;
  std::vector<std::string> labels;
};

// One patched activation of a layer: which hook, which head (-1: all) and position (-1: all), and
// the grid cell (flat index, row-major over the axes) that the patched run's metric goes to.
struct LayerPatch {
  LayerHook hook = LayerHook::Z;
  int64_t head = -1, pos = -1;
  int64_t cell = 0;
};

// What a sweep kind patches and how its results are laid out. The engines (batched, per forward,
// attribution) are generic over it: a new sweep kind is one row of the table plus its two functions.
struct SweepLayout {
  const char* name;     // --sweep NAME, the patching panel's list
  const char* summary;  // one line for the usage text and the panel's tooltip
  std::vector<SweepAxis> (*axes)(const SweepShape& s);                           // outermost first
  std::vector<LayerPatch> (*patchesOfLayer)(int64_t layer, const SweepShape& s);  // in batch order
};

// Every sweep kind, in table order.
const std::vector<SweepKind>& sweepKinds();
const char* toString(SweepKind k);
SweepKind sweepKindFromString(const std::string& s);  // throws InputError
// Every sweep kind's name, joined: sweepKindList("|") = "heads|head-pos|resid-pos|layer-pos|...".
std::string sweepKindList(const std::string& separator, const std::string& last = "");
// The labels of one axis: its own labels, the token labels for "pos" (numbers when they do not
// match its size), "L<i>" for layers, "H<i>" for heads, "KV<i>" for kv heads, numbers otherwise.
std::vector<std::string> sweepAxisLabels(const SweepAxis& axis, const std::vector<std::string>& positionLabels = {});

enum class PatchDirection {
  Denoising,  // clean activation into the corrupted run
  Noising,    // corrupted activation into the clean run
};

struct PatchingRequest {
  std::vector<int64_t> clean, corrupted;  // same length (checked)
  // Optional layer-0 inputs [1, pos, d_model] run instead of embedding `clean` / `corrupted`: an
  // image prompt (VlmInput::embeds), so that two images can be patched into each other. Both or
  // neither; the token vectors then give the lengths and labels (the spliced ids).
  at::Tensor cleanEmbeds, corruptedEmbeds;
  int64_t answer = -1, wrong = -1;        // token ids for the metric
  SweepKind sweep = SweepKind::Heads;
  PatchDirection direction = PatchDirection::Denoising;
  int64_t maxBatch = 64;                  // patched runs per batched forward (per-layer engine)
  // Pipelined engine: patches of layer l join the batch at layer l, so every layer runs once with
  // all the rows that reach it (bigger matrix products). Used while the rows fit `maxRows`.
  bool pipeline = true;
  int64_t maxRows = 1024;
};

struct PatchingResult {
  SweepKind sweep = SweepKind::Heads;
  std::string method;                     // "exact-batched", "exact-per-patch", "attribution"
  PatchDirection direction = PatchDirection::Denoising;
  at::Tensor grid;                        // normalised metric, shape by sweep
  std::vector<std::string> axes;
  std::vector<SweepAxis> gridAxes;        // the same axes with their sizes and labels
  double cleanMetric = 0, corruptedMetric = 0;
  // The spread of the clean run's last-position logits (their standard deviation): the scale a
  // clean-corrupted gap is judged against.
  double logitScale = 0;
  // Why the normalised grid may mislead (a gap small against the logit scale amplifies noise);
  // also in the JSON ("warnings") and on the CLI's stderr. Empty when there is nothing to say.
  std::vector<std::string> warnings;
  int64_t forwards = 0;                   // model invocations used
  nlohmann::json toJson(const std::vector<std::string>& tokenStrings = {}) const;
};

std::ostream& operator<<(std::ostream& os, SweepKind k);        // its name (test output)
std::ostream& operator<<(std::ostream& os, PatchDirection d);   // "denoising" / "noising"

// A clean-corrupted gap below this fraction of the logit scale gets a warning: normalised values
// are then differences of a few hundredths of a logit divided by that small gap.
constexpr double kSmallGapFraction = 0.1;

// Throws InputError for mismatched lengths, empty prompts or token ids out of range.
PatchingResult patchBatched(HookedTransformer& model, const PatchingRequest& req, const Progress& progress = {});
// The reference loop: one full forward per patch, as TransformerLens does it.
PatchingResult patchPerForward(HookedTransformer& model, const PatchingRequest& req, const Progress& progress = {});
// Path patching (Wang et al., IOI): the effect of a sender head on one receiver head through the
// receiver's query, key or value input only. For every sender (layer < receiver layer): run the
// target prompt with the sender's z taken from the source run and every other head frozen at the
// target run (MLPs recomputed), record the receiver's q/k/v, then run the target prompt with only
// that input of the receiver replaced. Grid [layer, head] over senders; NaN where a head is not a
// sender (its layer is not before the receiver's). Under GQA, K and V belong to the receiver's kv
// head, so the patch reaches every query head of its group.
enum class PathInput { Q, K, V };
PathInput pathInputFromString(const std::string& s);  // "q", "k", "v"; throws InputError
PatchingResult patchPath(HookedTransformer& model, const PatchingRequest& req, int receiverLayer, int receiverHead, PathInput input,
                         const Progress& progress = {});

// First-order estimate (a_clean - a_corrupt) . dmetric/da at the corrupted run: 2 forwards, 1 backward.
PatchingResult patchAttribution(HookedTransformer& model, const PatchingRequest& req, const Progress& progress = {});

}  // namespace headlab
