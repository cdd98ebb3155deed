// Developer tool (not installed): how much does demo-vlm's accuracy fall when its top-K heads by
// VHD are ablated, against K random other heads, for each K and ablation kind. Used to choose the
// demo report's causal check (issue #10).
#include <ATen/ATen.h>
#include <torch/types.h>

#include <algorithm>
#include <iostream>
#include <numeric>
#include <random>

#include "headlab/core/demo_vlm.h"
#include "headlab/core/interventions.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"
#include "headlab/plugins/probe_plugin.h"

using namespace headlab;

int main(int argc, char** argv) {

  // headlab-vlm-ablation-sweep [FOLDER | --train SEED FOLDER]
  std::string folder = argc > 1 ? argv[1] : ensureDemoVlm();
  if (folder == "--train" && argc > 3) {
    DemoVlmOptions options;
    options.seed = std::stoull(argv[2]);
    folder = argv[3];
    trainDemoVlm(folder, options);
  }
  auto vlm = loadLlava(folder);
  auto tok = loadTokenizer(folder);
  c10::InferenceMode guard;
  const auto& c = vlm->language().config();
  std::cout << "accuracy " << evaluateDemoVlm(*vlm, *tok, 200, 77) << "\n";
  auto probe = plugins::ProbeRegistry::instance().create("vhd");
  DemoVlmTasks tasks(55);
  std::vector<double> filt(static_cast<size_t>(c.n_layers * c.n_heads), 0.0), raw(filt.size(), 0.0);
  const int questions = 24;
  for (int i = 0; i < questions; ++i) {
    DemoVlmExample ex = tasks.example();
    const auto& vc = vlm->visionConfig();
    at::Tensor mean = at::tensor(std::vector<float>(vc.mean.begin(), vc.mean.end())).view({1, 3, 1, 1});
    at::Tensor sd = at::tensor(std::vector<float>(vc.std.begin(), vc.std.end())).view({1, 3, 1, 1});
    at::Tensor px = (ex.pixels.unsqueeze(0) - mean) / sd;
    plugins::ProbeContext ctx{vlm->language(), tok.get(), {{"prompt", ex.question}}, {}};
    ctx.vlm = vlm.get(), ctx.pixels = &px;
    auto r = probe->run(ctx);
    for (size_t k = 0; k < filt.size(); ++k) {
      filt[k] += r["grid"]["values"][k].get<double>() / questions;
      raw[k] += r["vhd_raw"]["values"][k].get<double>() / questions;
    }
  }
  for (int64_t l = 0; l < c.n_layers; ++l) {
    std::cout << "L" << l << " raw:";
    for (int64_t h = 0; h < c.n_heads; ++h) std::cout << " " << raw[l * c.n_heads + h];
    std::cout << "\n   filt:";
    for (int64_t h = 0; h < c.n_heads; ++h) std::cout << " " << filt[l * c.n_heads + h];
    std::cout << "\n";
  }
  // Single-head zero ablations.
  // Knockout: the head's scores on the image keys (positions 1..16 of every demo question) get
  // log(1e-9): it can no longer read the image directly (PASTA with the text as the emphasis).
  std::vector<int64_t> textKeys{0};
  for (int64_t p = 17; p < 24; ++p) textKeys.push_back(p);
  auto accuracyWith = [&](const std::vector<int64_t>& heads, InterventionKind kind) {
    std::vector<Intervention> ivs;
    for (int64_t k : heads) {
      ivs.push_back(Intervention{kind, static_cast<int>(k / c.n_heads), {static_cast<int>(k % c.n_heads)}});
      if (kind == InterventionKind::Pasta) ivs.back().alpha = 1e-9, ivs.back().keys = textKeys;
    }
    auto handles = install(vlm->language(), ivs);
    return evaluateDemoVlm(*vlm, *tok, 200, 77);
  };
  std::cout << "single-head zero:";
  for (int64_t k = 0; k < c.n_layers * c.n_heads; ++k) std::cout << " " << accuracyWith({k}, InterventionKind::Zero);
  std::cout << "\n";
  for (const std::string rankBy : {"raw"}) {
    const auto& score = rankBy == "raw" ? raw : filt;
    std::vector<int64_t> order(score.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
    for (InterventionKind kind : {InterventionKind::Pasta, InterventionKind::Zero}) {
      for (int64_t K = 1; K <= 8; ++K) {
        std::vector<int64_t> top(order.begin(), order.begin() + K);
        const double topAcc = accuracyWith(top, kind);
        std::mt19937_64 rng(0);
        double sum = 0;
        const int draws = 6;
        for (int d = 0; d < draws; ++d) {
          std::vector<int64_t> rest(order.begin() + K, order.end());
          std::shuffle(rest.begin(), rest.end(), rng);
          rest.resize(K);
          sum += accuracyWith(rest, kind);
        }
        std::cout << rankBy << " " << toString(kind) << " K=" << K << " top " << topAcc << " random " << sum / draws << "\n" << std::flush;
      }
    }
  }
}
