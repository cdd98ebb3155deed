// CUDA check of the core runtime: the same random models and calls on CPU and on CUDA must agree.
// The CMake build compiles it (headlab_cuda_check, so it keeps compiling) but no test runs it: CI has
// no GPU. On a GPU machine tests/cuda/run.sh builds it against the installed PyTorch and runs it.
// Usage: headlab_cuda_check [LLAVA_FOLDER [LLAMA2C_CHECKPOINT TOKENIZER_BIN]]. Exit status: 0 all agree, 1 a mismatch, 2 no CUDA device.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "headlab/core/generate.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/incremental_runner.h"
#include "headlab/core/interventions.h"
#include "headlab/core/patching.h"
#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"
#include "headlab/plugins/probe_plugin.h"
#include "archs/architectures.h"
#include "../support/random_model.h"

using namespace headlab;
int failures = 0;
void check(bool ok, const char* what, double detail) {
  std::printf("%s %s (%.3g)\n", ok ? "ok  " : "FAIL", what, detail);
  if (!ok) ++failures;
}
// The largest difference between the numbers of two probe results of the same shape, relative to
// max(1, |a|); infinity when their structure differs.
double jsonDiff(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return std::abs(a.get<double>() - b.get<double>()) / std::max(1.0, std::abs(a.get<double>()));
  if (a.type() != b.type() || a.size() != b.size()) return INFINITY;
  double worst = 0;
  if (a.is_array())
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, jsonDiff(a[i], b[i]));
  if (a.is_object())
    for (auto it = a.begin(); it != a.end(); ++it) worst = std::max(worst, b.contains(it.key()) ? jsonDiff(*it, b[it.key()]) : INFINITY);
  return worst;
}
double maxDiff(const at::Tensor& a, const at::Tensor& b) { return (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>(); }

int main(int argc, char** argv) {
  // HEADLAB_CUDA_CHECK_ON_CPU=1 runs the harness CPU against CPU (to try it on a machine without a GPU).
  const bool dryRun = !at::hasCUDA() && std::getenv("HEADLAB_CUDA_CHECK_ON_CPU");
  const at::Device cuda = dryRun ? at::Device(at::kCPU) : at::Device(at::kCUDA);
  std::printf("cuda available: %d%s\n", static_cast<int>(at::hasCUDA()), dryRun ? " (dry run on the CPU)" : "");
  if (!at::hasCUDA() && !dryRun) return 2;
  for (const char* arch : {"llama", "gpt2", "mistral", "llama2c"}) {
    std::printf("== %s\n", arch);
    ModelConfig c = test::smallConfig(arch);
    c.n_ctx = int64_t{1} << 20;  // RoPE tables grow on demand, on the model's device
    if (std::string(arch) == "gpt2") c.n_ctx = 64;
    HookedTransformer cpu(c, test::randomWeights(c, 3)), gpu(c, test::randomWeights(c, 3));
    gpu.to(cuda, at::kFloat);
    at::Tensor tokens = test::randomTokens(2, 12, 50);
    {
      c10::InferenceMode g;
      check(maxDiff(cpu.forward(tokens), gpu.forward(tokens.to(cuda))) < 1e-3, "forward logits", maxDiff(cpu.forward(tokens), gpu.forward(tokens.to(cuda))));
      check(gpu.forward(tokens.to(cuda)).device().type() == cuda.type(), "logits stay on the device", 0);
    }
    GenerateOptions opt;
    opt.maxNewTokens = 8, opt.stopAtEos = false;
    auto a = generate(cpu, {1, 2, 3, 4}, opt), b = generate(gpu, {1, 2, 3, 4}, opt);
    check(a == b, "greedy generation with a KV cache", static_cast<double>(a.size()));
    at::Tensor embeds;
    {
      c10::InferenceMode g;
      embeds = gpu.embed(at::tensor({1, 2, 3, 4}, at::kLong).unsqueeze(0).to(cuda));
    }
    check(generateFromEmbeddings(gpu, embeds, opt) == a, "generation from embeddings", 0);
    PatchingRequest r;
    r.clean = {1, 5, 7, 9, 11, 13}, r.corrupted = {1, 5, 8, 9, 11, 13}, r.answer = 12, r.wrong = 14;
    for (SweepKind k : {SweepKind::Heads, SweepKind::ResidPos}) {
      r.sweep = k;
      auto pc = patchBatched(cpu, r), pg = patchBatched(gpu, r);
      check(maxDiff(pc.grid, pg.grid) < 1e-3, toString(k), maxDiff(pc.grid, pg.grid));
    }
    r.sweep = SweepKind::Heads;
    check(maxDiff(patchAttribution(cpu, r).grid, patchAttribution(gpu, r).grid) < 1e-3, "attribution patching",
          maxDiff(patchAttribution(cpu, r).grid, patchAttribution(gpu, r).grid));
    {
      c10::InferenceMode g;
      at::Tensor x = at::randn({1, 6, c.d_model});
      if (c.rope != RopeLayout::None && c.sliding_window == 0)  // a window hides every key of a cacheless block at 20000
        check(maxDiff(cpu.block(0, x, nullptr, 20000), gpu.block(0, x.to(cuda), nullptr, 20000)) < 1e-3, "block at position 20000 (grown RoPE table)",
              maxDiff(cpu.block(0, x, nullptr, 20000), gpu.block(0, x.to(cuda), nullptr, 20000)));
    }
    IncrementalRunner rc(cpu), rg(gpu);
    rc.setPrompt({1, 2, 3, 4, 5, 6});
    rg.setPrompt({1, 2, 3, 4, 5, 6});
    Intervention zero;
    zero.layer = 1, zero.heads = {2};
    rc.update({zero});
    rg.update({zero});
    check(maxDiff(rc.logits(), rg.logits()) < 1e-3, "click-to-ablate recompute (zero L1H2)", maxDiff(rc.logits(), rg.logits()));
  }
  if (argc > 3) {
    // Every probe of the registry on a real model (a llama2.c checkpoint and its tokenizer, e.g.
    // stories260K), CPU against CUDA: each probe's head grid must agree.
    std::printf("== probes on %s\n", argv[2]);
    Llama2cFile f = readLlama2c(argv[2]);
    ModelConfig c = arch::llamaConfigFromLlama2c(f.header);
    HookedTransformer cpu(c, arch::llamaWeightsFromGguf(c, f.tensors)), gpu(c, arch::llamaWeightsFromGguf(c, f.tensors));
    gpu.to(cuda, at::kFloat);
    auto tok = loadLlama2cTokenizer(argv[3], c.d_vocab);
    for (const std::string& name : plugins::ProbeRegistry::instance().names()) {
      if (name == "vhd" || name == "var" || name == "look") continue;  // below, on the LLaVA folder
      auto run = [&](HookedTransformer& m) {
        auto probe = plugins::ProbeRegistry::instance().create(name);
        nlohmann::json params = nlohmann::json::object();
        for (const auto& p : probe->parameters()) params[p.name] = p.defaultValue;
        plugins::ProbeContext ctx{m, tok.get(), params, {}};
        return probe->run(ctx);
      };
      try {
        const double diff = jsonDiff(run(cpu), run(gpu));  // every number of the result
        check(diff < 1e-3, ("probe " + name).c_str(), diff);
      } catch (const std::exception& e) {
        std::printf("FAIL probe %s threw: %s\n", name.c_str(), e.what());
        ++failures;
      }
    }
  }
  if (argc > 1) {
    // A LLaVA folder (tests/reference/make_reference_models.py writes a tiny one): the vision tower,
    // the splice, generation and patching between two images, CPU against CUDA.
    std::printf("== llava %s\n", argv[1]);
    auto cpu = loadLlava(argv[1]), gpu = loadLlava(argv[1]);
    gpu->to(cuda, at::kFloat);
    const int64_t S = cpu->visionConfig().image_size;
    at::manual_seed(11);
    at::Tensor pixels = at::randn({1, 3, S, S}), other = at::randn({1, 3, S, S});
    const std::vector<int64_t> ids = withImagePlaceholder({1, 5, 7, 9}, cpu->visionConfig().image_token_id, 1);
    VlmInput ic, ig, oc, og;
    {
      c10::InferenceMode g;
      ic = cpu->prepare(ids, pixels), ig = gpu->prepare(ids, pixels);
      oc = cpu->prepare(ids, other), og = gpu->prepare(ids, other);
      check(ig.embeds.device().type() == cuda.type(), "spliced embeddings on the model's device", 0);
      check(maxDiff(cpu->visionFeatures(pixels), gpu->visionFeatures(pixels)) < 1e-4, "vision tower features",
            maxDiff(cpu->visionFeatures(pixels), gpu->visionFeatures(pixels)));
      check(maxDiff(cpu->forward(ic), gpu->forward(ig)) < 1e-3, "image prompt logits", maxDiff(cpu->forward(ic), gpu->forward(ig)));
    }
    GenerateOptions opt;
    opt.maxNewTokens = 6, opt.stopAtEos = false;
    check(generateFromEmbeddings(cpu->language(), ic.embeds, opt) == generateFromEmbeddings(gpu->language(), ig.embeds, opt),
          "answer generation with a KV cache", 0);
    PatchingRequest r;
    r.clean = ic.ids, r.corrupted = oc.ids, r.answer = 12, r.wrong = 14, r.sweep = SweepKind::ResidPos;
    PatchingRequest rg = r;
    r.cleanEmbeds = ic.embeds, r.corruptedEmbeds = oc.embeds;
    rg.cleanEmbeds = ig.embeds, rg.corruptedEmbeds = og.embeds;
    auto pc = patchBatched(cpu->language(), r), pg = patchBatched(gpu->language(), rg);
    check(maxDiff(pc.grid, pg.grid) < 1e-3, "patching between two images", maxDiff(pc.grid, pg.grid));
    for (const char* name : {"vhd", "var", "look"}) {
      auto run = [&](VisionLanguageModel& m, const at::Tensor& px) {
        plugins::ProbeContext ctx{m.language(), nullptr, {{"tokens", ids}}, {}, &m, &px};
        return plugins::ProbeRegistry::instance().create(name)->run(ctx);
      };
      try {
        const at::Tensor pixelsGpu = pixels.to(cuda);
        const double diff = jsonDiff(run(*cpu, pixels), run(*gpu, pixelsGpu));
        check(diff < 1e-3, (std::string("probe ") + name).c_str(), diff);
      } catch (const std::exception& e) {
        std::printf("FAIL probe %s threw: %s\n", name, e.what());
        ++failures;
      }
    }
  }
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
