// The GPU benchmarks of issue #24, CPU and CUDA side by side in one run (PRODUCT.md §9: only ratios
// within a run mean anything). Needs the core runtime only (no Qt, HDF5 or PCRE2), so that
// scripts/gpu-check.sh can build it with g++ against an installed PyTorch's libtorch.
//   headlab-gpu-bench [--device cpu|cuda|both] [--quick]
// Prints a Markdown table: one row per measurement, one column per device.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench_models.h"
#include "headlab/core/incremental_runner.h"
#include "headlab/core/interventions.h"
#include "headlab/core/patching.h"

namespace {

using namespace headlab;
using namespace headlab::bench;

struct Table {
  std::vector<std::string> rows;                          // in first-seen order
  std::map<std::pair<std::string, std::string>, std::string> cells;  // (row, device) -> text
  void set(const std::string& row, const std::string& device, const std::string& text) {
    if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
    cells[{row, device}] = text;
    std::fprintf(stderr, "%s [%s]: %s\n", row.c_str(), device.c_str(), text.c_str());
  }
};

std::string fmt(const char* format, double a, double b = 0, double c = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, format, a, b, c);
  return buf;
}

PatchingRequest request(int64_t T, int64_t vocab, SweepKind sweep) {
  PatchingRequest r;
  r.clean = tokens(T, vocab, 2);
  r.corrupted = r.clean;
  r.corrupted[T / 2] = (r.corrupted[T / 2] + 1) % vocab;
  r.answer = 11, r.wrong = 17, r.sweep = sweep;
  return r;
}

// GPT-2 small (12 x 12 heads, d_model 768) or a tiny stand-in with --quick: head and head x position
// sweeps at an IOI-length prompt, batched against one forward per patch, and attribution patching.
void gpt2Sweeps(Table& t, at::Device dev, bool quick) {
  const Shape s = quick ? Shape{4, 4, 64, 256, 1000, 15} : Shape{12, 12, 768, 3072, 50257, 15};
  const std::string name = quick ? "tiny GPT-2" : "GPT-2 small";
  HookedTransformer m = gpt2Like(s, dev);
  const std::string d = dev.str();
  for (SweepKind k : {SweepKind::Heads, SweepKind::HeadPos}) {
    PatchingRequest r = request(s.tokens, s.vocab, k);
    const int64_t patches = s.layers * s.heads * (k == SweepKind::HeadPos ? s.tokens : 1);
    const std::string row = name + " " + toString(k) + " sweep, " + std::to_string(s.tokens) + " tokens (" + std::to_string(patches) + " patches)";
    PatchingResult res;
    const double batched = seconds([&] { res = patchBatched(m, r); }, 3, dev);
    PatchingRequest wide = r;
    wide.maxBatch = 1024, wide.maxRows = 1 << 16;  // every patch of the sweep in the pipeline at once
    const double pipelined = seconds([&] { patchBatched(m, wide); }, 3, dev);
    // One forward per patch: run in full on CUDA; on the CPU estimated from one patched forward.
    double perPatch = 0;
    std::string how = "measured";
    if (dev.is_cuda() || patches <= 200) {
      perPatch = seconds([&] { patchPerForward(m, r); }, 1, dev);
    } else {
      at::Tensor ids = at::tensor(r.corrupted, at::kLong).unsqueeze(0).to(dev);
      perPatch = patches * seconds([&] { c10::InferenceMode g; m.forward(ids); }, 3, dev);
      how = "estimated";
    }
    t.set(row + ": batched (default)", d, fmt("%.3f s", batched));
    t.set(row + ": batched, one pipeline", d, fmt("%.3f s", pipelined));
    t.set(row + ": one forward per patch", d, fmt("%.2f s (", perPatch) + how + ")");
    t.set(row + ": speed-up of batching", d, fmt("%.0fx", perPatch / std::min(batched, pipelined)));
  }
  PatchingRequest r = request(s.tokens, s.vocab, SweepKind::HeadPos);
  t.set(name + " attribution patching, head-pos, " + std::to_string(s.tokens) + " tokens", d,
        fmt("%.3f s", seconds([&] { patchAttribution(m, r); }, 3, dev)));
}

// Llama-3.2-1B's shape (16 layers, 32 / 8 heads, d_model 2048, vocabulary 128256), or a small stand-in
// with --quick: the head sweep at 512 tokens, click-to-ablate, and long prompts with the explicit
// attention (blockwise attention, issue #20, is not built yet: these rows show where it runs out).
void llamaRows(Table& t, at::Device dev, bool quick) {
  const LlamaShape s = quick ? LlamaShape{2, 4, 2, 64, 128, 1000, 4096} : LlamaShape{16, 32, 8, 2048, 8192, 128256, 131072};
  const std::string name = quick ? "tiny Llama" : "Llama-3.2-1B shape";
  const int64_t T = quick ? 64 : 512;
  const std::string d = dev.str();
  HookedTransformer m = llamaLike(s, dev);
  PatchingRequest r = request(T, s.vocab, SweepKind::Heads);
  const std::string sweepRow = name + " heads sweep, " + std::to_string(T) + " tokens (" + std::to_string(s.layers * s.heads) + " patches): batched";
  if (dev.is_cpu() && !quick)
    t.set(sweepRow, d, "skipped on the CPU (minutes)");
  else
    t.set(sweepRow, d, fmt("%.2f s", seconds([&] { patchBatched(m, r); }, 1, dev)));
  IncrementalRunner runner(m);
  const auto toks = tokens(T, s.vocab, 3);
  const double full = seconds([&] { runner.setPrompt(toks); }, 3, dev);
  t.set(name + " full forward, " + std::to_string(T) + " tokens", d, fmt("%.1f ms", full * 1e3));
  for (int layer : {0, static_cast<int>(s.layers) - 1}) {
    bool on = false;
    const double suffix = seconds([&] {
      on = !on;
      runner.update(on ? std::vector<Intervention>{Intervention{InterventionKind::Zero, layer, {0}}} : std::vector<Intervention>{});
    }, 5, dev);
    t.set(name + " click-to-ablate at layer " + std::to_string(layer) + ", " + std::to_string(T) + " tokens", d,
          fmt("%.1f ms (%.1fx faster than a full forward)", suffix * 1e3, full / suffix));
  }
  for (int64_t longT : quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{8192, 32768, 131072}) {
    const std::string row = name + " one forward, " + std::to_string(longT) + " tokens, explicit attention";
    if (dev.is_cpu() && !quick) {
      t.set(row, d, "skipped on the CPU");
      continue;
    }
    try {
      at::Tensor ids = at::tensor(tokens(longT, s.vocab, 5), at::kLong).unsqueeze(0).to(dev);
      const double secs = seconds([&] { c10::InferenceMode g; m.forwardFrom(0, m.embed(ids), true); }, 1, dev);
      t.set(row, d, fmt("%.2f s", secs));
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      t.set(row, d, what.find("out of memory") != std::string::npos ? "out of memory" : "failed: " + what.substr(0, 80));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = "both";
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--device" && i + 1 < argc) which = argv[++i];
    else {
      std::fprintf(stderr, "usage: headlab-gpu-bench [--device cpu|cuda|both] [--quick]\n");
      return 2;
    }
  }
  std::vector<at::Device> devices;
  if (which == "cpu" || which == "both") devices.emplace_back(at::kCPU);
  if (which == "cuda" || which == "both") {
    if (at::hasCUDA()) devices.emplace_back(at::kCUDA, 0);
    else if (which == "cuda") return std::fprintf(stderr, "error: --device cuda: this libtorch sees no CUDA device\n"), 1;
  }
  // No global inference mode: attribution patching needs autograd on the weights.
  Table t;
  for (const at::Device& dev : devices) {
    gpt2Sweeps(t, dev, quick);
    llamaRows(t, dev, quick);
  }
  std::printf("| benchmark |");
  for (const auto& dev : devices) std::printf(" %s |", dev.str().c_str());
  std::printf("\n|---|");
  for (size_t i = 0; i < devices.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (const auto& row : t.rows) {
    std::printf("| %s |", row.c_str());
    for (const auto& dev : devices) {
      auto it = t.cells.find({row, dev.str()});
      std::printf(" %s |", it == t.cells.end() ? "" : it->second.c_str());
    }
    std::printf("\n");
  }
  return 0;
}
