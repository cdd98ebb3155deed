// Click-to-ablate: one prompt, a changing set of interventions, and a recompute that starts at
// the first layer whose interventions changed (the layers before it are reused from the last run).
// Thread: use from the thread that owns the model (the GUI's worker).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "headlab/core/interventions.h"

namespace headlab {

class HookedTransformer;
struct ModelConfig;

class IncrementalRunner {
 public:
  explicit IncrementalRunner(HookedTransformer& model, bool capturePatterns = true);

  // Bytes held for a `positions`-long prompt: every layer's [head, T, T] pattern twice (baseline and
  // current, float32) and input, plus one layer's explicit scores and softmax while it runs.
  static uint64_t estimateBytes(const ModelConfig& config, int64_t positions);
  // The longest prompt whose estimate fits in `budget` bytes.
  static int64_t maxPositions(const ModelConfig& config, uint64_t budget);
  // The most the runner may hold; a longer prompt is refused before any work (InputError naming the
  // sizes and the way out). Default: 3/4 of the memory available when the runner is made; 0: no limit.
  void setMemoryBudget(uint64_t bytes) { m_budget = bytes; }
  uint64_t memoryBudget() const { return m_budget; }

  // Runs the plain forward on tokens ([pos] ids) and caches every layer's input. Throws InputError.
  void setPrompt(const std::vector<int64_t>& tokens);
  // The same from layer 0's input (a vision-language prompt: image tokens spliced into the text).
  // embeds [1, pos, d_model]; tokens [pos] label the positions. Throws InputError on a mismatch.
  void setPrompt(const std::vector<int64_t>& tokens, const at::Tensor& embeds);
  // Applies the complete set `ivs` and recomputes from the earliest changed layer.
  // Returns that layer (n_layers when nothing changed).
  int update(const std::vector<Intervention>& ivs);

  const std::vector<int64_t>& tokens() const { return m_tokens; }
  // Next-token logits at the last position: [1, d_vocab].
  const at::Tensor& baselineLogits() const { return m_baseline; }
  const at::Tensor& logits() const { return m_logits; }  // with interventions
  const at::Tensor& baselinePattern(int layer) const { return m_basePatterns.at(layer); }  // [head, q, k]
  const at::Tensor& pattern(int layer) const { return m_patterns.at(layer); }             // [head, q, k]
  int lastStartLayer() const { return m_lastStart; }

 private:
  int runFrom(int layer, const std::vector<Intervention>& ivs);
  void checkBudget(int64_t positions) const;
  static std::string signature(const std::vector<Intervention>& ivs, int layer);

  HookedTransformer& m_model;
  bool m_capturePatterns;
  std::vector<int64_t> m_tokens;
  std::vector<at::Tensor> m_residPre;  // per layer, [1, pos, d_model], of the current run
  std::vector<at::Tensor> m_patterns, m_basePatterns;
  std::vector<std::string> m_signatures;
  at::Tensor m_baseline, m_logits;
  int m_lastStart = 0;
  uint64_t m_budget = 0;
};

}  // namespace headlab
