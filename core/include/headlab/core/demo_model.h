// The embedded default model (PRODUCT.md §8): HeadLab ships a recipe, not weights. On first use
// it trains, with a fixed seed, a small GPT-2-architecture model on synthetic tasks whose circuits
// are known (repeated random word sequences -> induction heads; a secret code hidden in filler
// text and asked for at the end -> heads that copy from the needle), and caches it as a normal
// Hugging Face folder (config.json, model.safetensors, tokenizer.json WordLevel, training.json).
#pragma once
#include <cstdint>
#include <functional>

#include "headlab/core/progress.h"
#include <random>
#include <string>
#include <vector>

namespace headlab {

struct DemoTrainingOptions {
  uint64_t seed = 1234;
  // Chosen by a search over 80 configurations (a replica of this recipe on a GPU, then confirmed
  // here): 2 layers x 8 heads, batch 24 for 3000 steps, lr 1e-2, full language-model loss on the
  // filler. Smaller batches at the same token budget did not learn; 4 heads per layer learned but
  // left no heads spare for the random-head control of the masking experiment.
  int steps = 3000;
  int batch = 24;
  int64_t maxLen = 64;  // training sequence length = the model's n_ctx
  double lr = 1e-2;
  int64_t dModel = 64;
  int64_t layers = 2;
  int64_t heads = 8;
  double posInitStd = 0.1;  // scale of the sinusoidal start of the learned positions
  // Loss weight of the filler text before the question (the answer and the second copy weigh 1).
  // Full language-model loss on the filler is what makes sharp previous-token and induction heads
  // form in the budget: at 0.1 the model learns positional shortcuts instead (induction score 0.1).
  double fillerWeight = 1.0;
  int64_t mlpRatio = 2;  // d_mlp = mlpRatio * d_model
};

// One training / evaluation example as words (BOS not included).
struct DemoExample {
  std::vector<std::string> words;
  size_t targetBegin = 0, targetEnd = 0;  // words [targetBegin, targetEnd) are what must be predicted
  size_t needleBegin = 0, needleEnd = 0;  // retrieval: the needle's words (0, 0 for induction)
  std::string answer;                      // retrieval: "4 7 2"
};

class DemoTasks {
 public:
  explicit DemoTasks(uint64_t seed);
  static const std::vector<std::string>& vocabulary();  // ids = positions; 0 <pad>, 1 <unk>, 2 <bos>
  // BOS + filler with the needle "the secret code of anna is 4 7 2 .", a distractor code for another
  // name, and "question : the secret code of anna is"
  DemoExample retrieval(int64_t contextWords, double depth = -1);
  // [random prefix of 0..maxPrefix words] R R with R random words; the target is the second copy.
  DemoExample induction(int64_t length, int64_t maxPrefix = 0);
  std::string filler(int64_t words);  // simple sentences, for haystacks
  void setDistractor(bool on) { m_distractor = on; }  // a second code for another name

 private:
  std::string pick(const std::vector<std::string>& from);
  std::mt19937_64 m_rng;
  bool m_distractor = false;
};

// Returns the demo model folder, training it first when it is missing or does not load.
// progress(fraction, stage) returning false cancels (CancelledError; nothing is left behind).
std::string ensureDemoModel(const Progress& progress = {},
                            const DemoTrainingOptions& options = {});
std::string demoCacheDir();  // $XDG_CACHE_HOME/headlab/demo or ~/.cache/headlab/demo
// Trains into `folder` (written atomically: a temporary sibling renamed into place).
void trainDemoModel(const std::string& folder, const DemoTrainingOptions& options,
                    const Progress& progress = {});

class HookedTransformer;
class Tokenizer;

struct DemoEvaluation {
  double retrievalAccuracy = 0;  // exact answer, greedy, held-out prompts
  double inductionAccuracy = 0;  // next-token accuracy on the second copy
  int retrievalPrompts = 0, inductionSequences = 0;
};
// Held-out evaluation (a different seed than training). Runs on the caller's thread.
DemoEvaluation evaluateDemo(HookedTransformer& model, const Tokenizer& tok, int prompts = 100, uint64_t seed = 99,
                            int64_t contextWords = 100);
// Greedy answer (3 digits) to a retrieval example; used by the evaluation and the retrieval probe.
std::string demoAnswer(HookedTransformer& model, const Tokenizer& tok, const DemoExample& ex);

}  // namespace headlab
