// The second embedded default, `demo-vlm` (PRODUCT.md §8, issue #10): a tiny LLaVA (CLIP-style
// ViT + projector + LLaMA decoder) trained on first use, with a fixed seed, on synthetic images of
// coloured shapes on a 2 x 2 grid and questions about them ("what colour is at top left ?").
// Saved as a normal Hugging Face LLaVA folder under $XDG_CACHE_HOME/headlab/demo-vlm.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

#include "headlab/core/progress.h"
#include <random>
#include <string>
#include <vector>

namespace headlab {

class VisionLanguageModel;
class Tokenizer;

struct DemoVlmOptions {
  uint64_t seed = 4321;
  int steps = 2000;  // 93% held-out accuracy; 1000 steps at lr 3e-3 reached 68%
  int batch = 64;
  double lr = 5e-3;  // 1e-2 does not learn
};

// One synthetic scene and question. Pixels are [3, 16, 16] in [0, 1] (before CLIP normalisation).
struct DemoVlmExample {
  at::Tensor pixels;
  std::string question;  // "<image> what colour is at top left ?"
  std::string answer;    // "red", "circle" or "none"
};

class DemoVlmTasks {
 public:
  explicit DemoVlmTasks(uint64_t seed);
  static const std::vector<std::string>& vocabulary();  // 0 <pad>, 1 <unk>, 2 <bos>, 3 <image>
  DemoVlmExample example();

 private:
  std::mt19937_64 m_rng;
};

std::string demoVlmCacheDir();  // $XDG_CACHE_HOME/headlab/demo-vlm or ~/.cache/headlab/demo-vlm
// Trains into `folder` atomically (temporary sibling, then rename). progress returning false cancels.
void trainDemoVlm(const std::string& folder, const DemoVlmOptions& options,
                  const Progress& progress = {});
// The cached folder, trained first when missing, corrupt or from another recipe.
std::string ensureDemoVlm(const Progress& progress = {},
                          const DemoVlmOptions& options = {});

// Greedy one-word answers on held-out scenes: exact-answer accuracy. `prepareHook` runs before each
// question (e.g. to install ablations). Runs on the caller's thread.
double evaluateDemoVlm(VisionLanguageModel& vlm, const Tokenizer& tok, int questions = 200, uint64_t seed = 77);

}  // namespace headlab
