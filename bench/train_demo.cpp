// headlab-train-demo: trains a demo recipe variant and prints held-out quality, for tuning recipes.
//   headlab-train-demo STEPS LR BATCH D_MODEL LEN LAYERS POS_STD FILLER_WEIGHT HEADS MLP_RATIO SEED
//   headlab-train-demo vlm STEPS LR BATCH        (demo-vlm)
// HEADLAB_THREADS=N sets the thread count; PROF=1 writes an autograd profile to /tmp/prof.json.
#include <ATen/ATen.h>
#include <cstdio>
#include <chrono>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <memory>
#include "headlab/core/demo_model.h"
#include "headlab/core/demo_vlm.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"
#include <string>
#include "headlab/core/model_loader.h"
#include "headlab/core/startup.h"
int main(int argc, char** argv) {
  headlab::configureThreads(getenv("HEADLAB_THREADS") ? atoi(getenv("HEADLAB_THREADS")) : 0);
  if (argc > 1 && std::string(argv[1]) == "vlm") {  // headlab-train-demo vlm STEPS LR BATCH
    headlab::DemoVlmOptions v;
    if (argc > 2) v.steps = atoi(argv[2]);
    if (argc > 3) v.lr = atof(argv[3]);
    if (argc > 4) v.batch = atoi(argv[4]);
    auto t0 = std::chrono::steady_clock::now();
    headlab::trainDemoVlm("/tmp/demo_vlm_try", v, [](double f, const std::string& s) { if (int(f*1000) % 100 == 0) fprintf(stderr, "%s\n", s.c_str()); return true; });
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto vlm = headlab::loadLlava("/tmp/demo_vlm_try");
    auto tok = headlab::loadTokenizer("/tmp/demo_vlm_try");
    printf("vlm steps %d: %.1f s, accuracy %.3f\n", v.steps, secs, headlab::evaluateDemoVlm(*vlm, *tok));
    return 0;
  }
  headlab::DemoTrainingOptions o;
  if (argc > 1) o.steps = atoi(argv[1]);
  if (argc > 2) o.lr = atof(argv[2]);
  if (argc > 3) o.batch = atoi(argv[3]);
  if (argc > 4) o.dModel = atoi(argv[4]);
  if (argc > 5) o.maxLen = atoi(argv[5]);
  if (argc > 6) o.layers = atoi(argv[6]);
  if (argc > 7) o.posInitStd = atof(argv[7]);
  if (argc > 8) o.fillerWeight = atof(argv[8]);
  if (argc > 9) o.heads = atoi(argv[9]);
  if (argc > 10) o.mlpRatio = atoi(argv[10]);
  if (argc > 11) o.seed = strtoull(argv[11], nullptr, 10);
  std::unique_ptr<torch::autograd::profiler::RecordProfile> prof;
  if (getenv("PROF")) prof = std::make_unique<torch::autograd::profiler::RecordProfile>("/tmp/prof.json");
  auto t0 = std::chrono::steady_clock::now();
  headlab::trainDemoModel("/tmp/demo_try", o, [](double f, const std::string& s) { if (int(f*1000) % 100 == 0) fprintf(stderr, "%s\n", s.c_str()); return true; });
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  prof.reset();
  auto m = headlab::loadModel("/tmp/demo_try");
  auto e = headlab::evaluateDemo(*m.model, *m.tokenizer, 100, 99, o.maxLen - 20);
  printf("steps %d lr %g: %.1f s, retrieval %.2f, induction %.2f\n", o.steps, o.lr, secs, e.retrievalAccuracy, e.inductionAccuracy);
}
