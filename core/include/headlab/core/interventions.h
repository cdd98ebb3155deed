// Interventions as small composable functions on activations, and their installation as
// scoped hooks. Definitions: PROBES.md §5 (ablation kinds), §1.2 (ACT), §5 (PASTA).
// Every intervention names its kind and granularity (query head or kv group) in describe().
#pragma once
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "headlab/core/hooks.h"

namespace headlab {

class HookedTransformer;

enum class InterventionKind {
  Zero,           // hook_z of the head := 0
  Mean,           // hook_z := mean over a prompt set (per position optional)
  Resample,       // hook_z := the head's z on another prompt
  Uniform,        // pattern := uniform over the visible keys (Retrieval Head masking)
  Scale,          // hook_z *= alpha (reweight; VHR)
  ActRedistribute,// pattern[:, sinks] *= beta, freed mass to non-sink keys (ACT); sinks given, or found per head on each input
  Pasta,          // scores of non-emphasised keys += log(alpha) (PASTA)
  VarRedistribute,// ACT's edit on chosen rows, freed mass to the image's non-sink keys (VAR)
};
const char* toString(InterventionKind k);
InterventionKind interventionKindFromString(const std::string& s);  // throws InputError

struct Intervention {
  InterventionKind kind = InterventionKind::Zero;
  int layer = 0;
  std::vector<int> heads;     // query heads, or kv heads when kvGroup
  bool kvGroup = false;       // under GQA: the heads are kv heads; every query head of each group is edited
  double alpha = 1.0;         // Scale factor, PASTA alpha (default 0.01), ACT beta (default 0.4)
  at::Tensor source;          // Mean / Resample: z values [pos or 1, head, d_head] or [batch, pos, head, d_head]
  std::vector<int64_t> keys;  // ACT / VAR sink keys, PASTA emphasised keys (absolute positions); ACT without keys: see actSinks
  double threshold = 0.1;     // ACT without keys: a key is a sink when its mean attention over the rows that see it exceeds this
  int64_t receiverBegin = 0, receiverEnd = -1;  // ACT / VAR: keys that take the freed mass (-1: to the last)
  at::Tensor rows;            // VAR: [batch|1, n_heads, q] bool, the query rows edited (undefined: all)

  nlohmann::json describe() const;
};

// Query heads an intervention touches (expands kv groups). Throws InputError when out of range.
std::vector<int> targetQueryHeads(const Intervention& iv, int64_t nHeads, int64_t nKvHeads);

// The pure edits. Shapes: z [batch, pos, head, d_head]; pattern and scores [batch, head, q, k].
void zeroHeads(at::Tensor& z, const std::vector<int>& heads);
void scaleHeads(at::Tensor& z, const std::vector<int>& heads, double alpha);
void replaceHeads(at::Tensor& z, const std::vector<int>& heads, const at::Tensor& source);
// Uniform over keys j with qpos - window < j <= qpos (qpos = posOffset + row). window 0 = no window.
void uniformPattern(at::Tensor& pattern, const std::vector<int>& heads, int64_t posOffset, int64_t window = 0);
// Sink redistribution, ACT's and VAR's one edit: in the chosen rows, attention to the `sinks` keys is
// multiplied by `keep` (ACT's beta, VAR's p) and the freed mass goes to the non-sink keys of
// [receiverBegin, receiverEnd) in proportion to their attention. ACT: every row, every key receives;
// VAR: the image-centric rows, the image's keys receive. Rows with no receiving mass are left as they
// are (row 0 stays A[0,0] = 1), so every row still sums to what it summed to.
struct SinkRedistribution {
  std::vector<int64_t> sinks;
  double keep = 0.4;
  int64_t receiverBegin = 0, receiverEnd = -1;  // -1: to the last key
  at::Tensor rows;                              // [batch|1, n_heads, q] bool over all query heads; undefined: every row
};
void redistributeSinks(at::Tensor& pattern, const std::vector<int>& heads, const SinkRedistribution& r);
// ACT's sinks of one head on this input (GATECH-EIC/ACT, atten_process_eval): the keys whose attention,
// summed over the rows and divided by the number of rows that see them, exceeds `threshold`, less the
// first such key (the reference keeps it: usually BOS). pattern [batch, head, q, k]; rows sit at
// posOffset.. (the whole prompt in a full forward, one row when decoding).
std::vector<int64_t> actSinks(const at::Tensor& pattern, int head, double threshold, int64_t posOffset);
// PASTA: add log(alpha) to the scores of every key not in `emphasised`.
void steerScores(at::Tensor& scores, const std::vector<int>& heads, const std::vector<int64_t>& emphasised, double alpha);

// Interventions written as text (the CLI's --edit), several separated by ';':
//   KIND:HEADS[:option=value]...
// KIND: zero, uniform, scale, act, pasta (mean and resample need source activations: the window and the
// API). HEADS: comma-separated L.H, L.* (every head), A-B.H or A-B.* (layers A to B inclusive).
// Options: alpha=X (scale factor, ACT's beta, PASTA's alpha; beta= is the same), threshold=X (ACT's
// on-the-fly sinks), keys=LIST (PASTA's emphasised keys; ACT's sinks instead of finding them), LIST as
// 3,5-9 written with '+' between items (keys=3+5-9). One Intervention per layer. Throws InputError
// naming the part it could not read; layers and heads are checked against nLayers / nHeads.
std::vector<Intervention> parseInterventions(const std::string& spec, int64_t nLayers, int64_t nHeads);

// Installs the intervention as hooks on `model`. The returned handles remove it when destroyed.
std::vector<HookHandle> install(HookedTransformer& model, const Intervention& iv);
std::vector<HookHandle> install(HookedTransformer& model, const std::vector<Intervention>& ivs);

}  // namespace headlab
