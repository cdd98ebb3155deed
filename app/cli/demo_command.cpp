// headlab-cli demo: trains or loads the demo model, runs every probe and a patching sweep on it,
// and writes report.html with PNG figures, tables, one paragraph per probe, and HDF5 traces.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QGuiApplication>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <numeric>
#include <random>
#include <algorithm>

#include <nlohmann/json.hpp>

#include "demo_command.h"
#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/demo_model.h"
#include "headlab/core/demo_vlm.h"
#include "headlab/core/interventions.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"
#include "headlab/core/errors.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/model_session.h"
#include "headlab/core/patching.h"
#include "headlab/core/trace.h"
#include "headlab/plugins/probe_plugin.h"
#include "report.h"

namespace headlab::cli {

namespace fs = std::filesystem;

namespace {
bool progressBar(double f, const std::string& stage) {
  const int width = 30, filled = static_cast<int>(f * width);
  std::fprintf(stderr, "\r[%s%s] %3d%% %s   ", std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
               static_cast<int>(f * 100), stage.c_str());
  std::fflush(stderr);
  return true;
}

std::vector<std::string> labels(const char* prefix, int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

std::string htmlTable(const nlohmann::json& grid, int digits = 3) {
  const int64_t L = grid["layers"], H = grid["heads"];
  std::ostringstream o;
  o << "<table><tr><th></th>";
  for (int64_t h = 0; h < H; ++h) o << "<th>H" << h << "</th>";
  o << "</tr>";
  for (int64_t l = 0; l < L; ++l) {
    o << "<tr><th>L" << l << "</th>";
    for (int64_t h = 0; h < H; ++h) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.*f", digits, grid["values"][l * H + h].get<double>());
      o << "<td>" << buf << "</td>";
    }
    o << "</tr>";
  }
  o << "</table>";
  return o.str();
}

void gridFigure(const fs::path& dir, const std::string& file, const std::string& title, const nlohmann::json& grid) {
  const int L = grid["layers"], H = grid["heads"];
  writeHeatmapPng((dir / file).string(), title, L, H, grid["values"].get<std::vector<double>>(), labels("L", L), labels("H", H));
}

std::string fmt(double v, int digits = 2) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// demo-vlm: accuracy, the VHD grid averaged over held-out questions, and the causal check (zero the
// top-K VHD heads vs K random other heads, mean of several draws).
// A demo-vlm scene [3, 16, 16] in [0, 1] as the tower takes it: [1, 3, 16, 16], CLIP-normalised.
at::Tensor clipNormalised(const VisionLanguageModel& vlm, const at::Tensor& pixels) {
  const auto& vc = vlm.visionConfig();
  at::Tensor mean = at::tensor(std::vector<float>(vc.mean.begin(), vc.mean.end())).view({1, 3, 1, 1});
  at::Tensor std = at::tensor(std::vector<float>(vc.std.begin(), vc.std.end())).view({1, 3, 1, 1});
  return (pixels.unsqueeze(0) - mean) / std;
}

// Image patching: a held-out colour question, and the same scene with the asked cell's colour changed
// (channels rolled: red -> green -> blue -> red, yellow -> cyan -> magenta -> yellow). Which position's
// residual stream, restored from the clean run, brings the clean answer back?
nlohmann::json imagePatchingSection(VisionLanguageModel& vlm, const Tokenizer& tok, const fs::path& dir) {
  DemoVlmTasks pool(57);
  for (int tries = 0; tries < 200; ++tries) {
    DemoVlmExample ex = pool.example();
    if (ex.question.find(" colour ") == std::string::npos || ex.answer == "none") continue;
    const bool bottom = ex.question.find("bottom") != std::string::npos, right = ex.question.find("right") != std::string::npos;
    at::Tensor other = ex.pixels.clone();
    at::Tensor cell = other.slice(1, bottom ? 8 : 0, bottom ? 16 : 8).slice(2, right ? 8 : 0, right ? 16 : 8);
    cell.copy_(cell.roll(1, 0));
    std::vector<int64_t> ids = tok.encode(ex.question, true);
    VlmInput clean = vlm.prepare(ids, clipNormalised(vlm, ex.pixels)), corrupted = vlm.prepare(ids, clipNormalised(vlm, other));
    const int64_t answer = resolveSingleToken(tok, ex.answer);
    const int64_t cleanTop = vlm.forward(clean)[0][-1].argmax().item<int64_t>();
    const int64_t wrong = vlm.forward(corrupted)[0][-1].argmax().item<int64_t>();
    if (cleanTop != answer || wrong == answer) continue;  // a pair the model answers right and differently
    PatchingRequest r;
    r.clean = clean.ids, r.corrupted = corrupted.ids, r.cleanEmbeds = clean.embeds, r.corruptedEmbeds = corrupted.embeds;
    r.answer = answer, r.wrong = wrong, r.sweep = SweepKind::ResidPos;
    PatchingResult res = patchBatched(vlm.language(), r);
    const std::vector<std::string> pos = positionLabels(tok, r.clean, &vlm.visionConfig(), clean.imageBegin, clean.imageEnd);
    at::Tensor g = res.grid.to(at::kCPU, at::kDouble).contiguous();
    writeHeatmapPng((dir / "patching_image.png").string(), "image patching: " + ex.question.substr(8) + " " + ex.answer + " vs " + tok.tokenString(wrong),
                    static_cast<int>(g.size(0)), static_cast<int>(g.size(1)), std::vector<double>(g.data_ptr<double>(), g.data_ptr<double>() + g.numel()),
                    labels("L", g.size(0)), pos);
    const int64_t best = g[0].abs().argmax().item<int64_t>();
    nlohmann::json out = res.toJson(pos);
    out["question"] = ex.question, out["answer"] = ex.answer, out["wrong"] = tok.tokenString(wrong);
    out["best_layer0"] = {{"pos", best}, {"label", pos[static_cast<size_t>(best)]}, {"value", g[0][best].item<double>()}};
    return out;
  }
  return nullptr;
}

// Where it looks: one held-out scene and question, the head-averaged attention of layer 0 from the
// answer position over the patch grid (look.png).
void lookFigure(VisionLanguageModel& vlm, const Tokenizer& tok, const fs::path& dir) {
  DemoVlmTasks shown(56);
  DemoVlmExample ex = shown.example();
  at::Tensor px = clipNormalised(vlm, ex.pixels);
  auto look = plugins::ProbeRegistry::instance().create("look");
  plugins::ProbeContext ctx{vlm.language(), &tok, {{"prompt", ex.question}, {"layer", 0}, {"general_prompt", ""}}, {}};
  ctx.vlm = &vlm, ctx.pixels = &px;
  auto r = look->run(ctx);
  at::Tensor bytes = (ex.pixels.permute({1, 2, 0}) * 255).round().clamp(0, 255).to(at::kByte).contiguous();
  std::vector<uint8_t> rgb(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  writeAttentionOverlayPng((dir / "look.png").string(), ex.question.substr(8) + "  (attention from the answer position, layer 0, head average)", rgb, 16, 16, r["map"]["values"].get<std::vector<double>>(),
                           r["map"]["side"].get<int>());
}

nlohmann::json vlmSection(const fs::path& dir) {
  std::cerr << (fs::exists(fs::path(demoVlmCacheDir()) / "config.json") ? "demo: loading the cached demo-vlm model\n"
                                                                           : "demo: training the demo-vlm model (once; cached afterwards)\n");
  const std::string folder = ensureDemoVlm(progressBar);
  std::cerr << "\n";
  auto vlm = loadLlava(folder);
  auto tok = loadTokenizer(folder);
  c10::InferenceMode guard;
  const double accuracy = evaluateDemoVlm(*vlm, *tok, 200, 77);
  auto probe = plugins::ProbeRegistry::instance().create("vhd");
  DemoVlmTasks tasks(55);
  const auto& c = vlm->language().config();
  std::vector<double> sum(static_cast<size_t>(c.n_layers * c.n_heads), 0.0), raw(sum.size(), 0.0);
  const int questions = 24;
  for (int i = 0; i < questions; ++i) {
    DemoVlmExample ex = tasks.example();
    at::Tensor px = clipNormalised(*vlm, ex.pixels);
    plugins::ProbeContext ctx{vlm->language(), tok.get(), {{"prompt", ex.question}}, {}};
    ctx.vlm = vlm.get(), ctx.pixels = &px;
    auto r = probe->run(ctx);
    for (size_t k = 0; k < sum.size(); ++k) {
      sum[k] += r["grid"]["values"][k].get<double>() / questions;
      raw[k] += r["vhd_raw"]["values"][k].get<double>() / questions;
    }
  }
  nlohmann::json grid = {{"name", "vhd"}, {"layers", c.n_layers}, {"heads", c.n_heads}, {"values", sum}};
  std::vector<int64_t> order(sum.size());
  std::iota(order.begin(), order.end(), 0);
  // Ranked by the unfiltered VHD: on this model the outlier filter zeroes the head that reads the
  // image most (high VHD and high text-only norm).
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return raw[a] > raw[b]; });
  auto accuracyWithout = [&](const std::vector<int64_t>& heads) {
    std::vector<Intervention> ivs;
    for (int64_t k : heads) ivs.push_back(Intervention{InterventionKind::Zero, static_cast<int>(k / c.n_heads), {static_cast<int>(k % c.n_heads)}});
    auto handles = install(vlm->language(), ivs);
    return evaluateDemoVlm(*vlm, *tok, 200, 77);
  };
  // K is chosen as for the retrieval heads: the smallest K whose top-K ablation halves accuracy,
  // at most half of all heads (the image is read redundantly: one head is rarely enough).
  int64_t K = 1;
  double topAcc = 0;
  nlohmann::json topCurve = nlohmann::json::array();
  const int64_t maxK = static_cast<int64_t>(order.size()) / 2;
  for (K = 1; K <= maxK; ++K) {
    topAcc = accuracyWithout(std::vector<int64_t>(order.begin(), order.begin() + K));
    topCurve.push_back({{"k", K}, {"accuracy", topAcc}});
    if (topAcc <= accuracy / 2 || K == maxK) break;
  }
  std::vector<int64_t> top(order.begin(), order.begin() + K);
  std::mt19937_64 rng(0);
  double randomSum = 0;
  const int draws = 10;
  nlohmann::json randomDraws = nlohmann::json::array();
  for (int d = 0; d < draws; ++d) {
    std::vector<int64_t> rest(order.begin() + K, order.end());
    std::shuffle(rest.begin(), rest.end(), rng);
    rest.resize(K);
    const double acc = accuracyWithout(rest);
    randomSum += acc;
    randomDraws.push_back({{"heads", rest}, {"accuracy", acc}});
  }
  gridFigure(dir, "vhd.png", "demo-vlm: VHD per head (mean over questions)", grid);
  lookFigure(*vlm, *tok, dir);
  const nlohmann::json imagePatching = imagePatchingSection(*vlm, *tok, dir);
  nlohmann::json training = readJsonFile((fs::path(folder) / "training.json").string());
  nlohmann::json rawGrid = {{"name", "vhd_raw"}, {"layers", c.n_layers}, {"heads", c.n_heads}, {"values", raw}};
  return {{"model", folder}, {"accuracy", accuracy}, {"vhd_grid", grid}, {"vhd_raw_grid", rawGrid}, {"k", K}, {"top_heads", top},
          {"accuracy_top_vhd_ablated", topAcc}, {"top_k_curve", topCurve}, {"accuracy_random_ablated", randomSum / draws}, {"random_draws", randomDraws},
          {"training_seconds", training.value("seconds", 0.0)}, {"image_patching", imagePatching}};
}

std::string joined(const std::vector<std::string>& w, size_t from, size_t to) {
  std::string s;
  for (size_t i = from; i < to; ++i) s += (s.empty() ? "" : " ") + w[i];
  return s;
}

// The demo's probe runs: every text probe on held-out prompts of the demo tasks.
nlohmann::json demoProbes(HookedTransformer& model, const Tokenizer& tok, DemoTasks& tasks) {
  const auto& c = model.config();
  auto& registry = plugins::ProbeRegistry::instance();
  auto run = [&](const std::string& probe, nlohmann::json params) {
    std::cerr << "demo: probe " << probe << "\n";
    auto p = registry.create(probe);
    plugins::ProbeContext ctx{model, &tok, std::move(params), progressBar};
    nlohmann::json r = p->run(ctx);
    std::cerr << "\n";
    return r;
  };
  std::string haystack = tasks.filler(400);
  nlohmann::json needles = nlohmann::json::array();
  for (int i = 0; i < 3; ++i) {
    DemoExample ex = tasks.retrieval(12);
    needles.push_back({{"needle", " " + joined(ex.words, ex.needleBegin, ex.needleEnd)},
                       {"question", joined(ex.words, ex.needleEnd + (ex.words.size() - ex.targetBegin > 0 ? 0 : 0), ex.targetBegin).substr(0)},
                       {"answer", ex.answer}});
    // The question is the words between the end of the filler and the answer.
    std::vector<std::string> q(ex.words.begin() + static_cast<long>(ex.targetBegin) - 8, ex.words.begin() + static_cast<long>(ex.targetBegin));
    needles.back()["question"] = joined(q, 0, q.size());
  }
  std::vector<std::string> demoPrompts;
  for (int i = 0; i < 6; ++i) {
    DemoExample ex = tasks.retrieval(c.n_ctx - 14);
    demoPrompts.push_back(joined(ex.words, 0, ex.targetBegin));
  }
  nlohmann::json results;
  // The demo prompts are of different lengths: measured each at its own (short_prompts = keep).
  results["sinks"] = run("sinks", {{"prompts", demoPrompts}, {"max_tokens", c.n_ctx}, {"short_prompts", "keep"}});
  results["hidden-sinks"] = run("hidden-sinks", {{"prompts", demoPrompts}, {"max_tokens", c.n_ctx}});
  results["massive"] = run("massive", {{"prompts", demoPrompts}, {"max_tokens", c.n_ctx}});
  results["streaming"] = run("streaming", {{"prompts", demoPrompts}, {"max_tokens", c.n_ctx}});
  // The mean attention on the induction targets (1 for a perfect head), the scale the report explains;
  // TransformerLens's normalisation (the probe's default) would put a perfect head at 20/41.
  results["induction"] = run("induction", {{"seq_len", 20}, {"batch", 8}, {"min_token", 3}, {"score", "mean"}});
  results["retrieval"] = run("retrieval", {{"haystack", haystack},
                                           {"needles", needles},
                                           {"template", "{context} {question}"},
                                           {"lengths", {40, 52}},
                                           {"depths", {0, 25, 50, 75, 100}},
                                           {"max_new_tokens", 3},
                                           {"adaptive", true},
                                           {"random_pool", "non_retrieval"},
                                           {"random_per_test", false},
                                           {"random_draws", 10}});

  return results;
}

// An example patching sweep: the same prompt with a different code in the needle.
struct DemoPatching {
  PatchingRequest request;
  PatchingResult heads, resid;
};

DemoPatching demoPatching(HookedTransformer& model, const Tokenizer& tok, DemoTasks& tasks) {
  DemoExample clean = tasks.retrieval(36, 0.3);
  std::vector<std::string> corruptWords = clean.words;
  std::string wrongDigit;
  for (size_t i = clean.needleBegin; i < clean.needleEnd; ++i)
    if (corruptWords[i] == clean.words[clean.targetBegin]) {
      wrongDigit = corruptWords[i] == "9" ? "1" : std::to_string(std::stoi(corruptWords[i]) + 1);
      corruptWords[i] = wrongDigit;
      break;
    }
  DemoPatching out;
  PatchingRequest& pr = out.request;
  pr.clean = tok.encode(joined(clean.words, 0, clean.targetBegin), true);
  pr.corrupted = tok.encode(joined(corruptWords, 0, clean.targetBegin), true);
  pr.answer = tok.encode(clean.words[clean.targetBegin], false).at(0);
  pr.wrong = tok.encode(wrongDigit, false).at(0);
  pr.sweep = SweepKind::Heads;
  std::cerr << "demo: patching sweep\n";
  out.heads = patchBatched(model, pr);
  pr.sweep = SweepKind::ResidPos;
  out.resid = patchBatched(model, pr);
  pr.sweep = SweepKind::Heads;
  return out;
}


nlohmann::json headGrid(const ModelConfig& c, const PatchingResult& patch) {
  return {{"layers", c.n_layers}, {"heads", c.n_heads},
          {"values", std::vector<double>(patch.grid.data_ptr<double>(), patch.grid.data_ptr<double>() + patch.grid.numel())}};
}

void writeDemoFigures(const fs::path& dir, const nlohmann::json& training, const nlohmann::json& results, const DemoPatching& dp,
                      const ModelConfig& c, const Tokenizer& tok) {
  const PatchingRequest& pr = dp.request;
  const PatchingResult& resid = dp.resid;
  const nlohmann::json patchGrid = headGrid(c, dp.heads);
  std::vector<double> steps, losses;
  for (const auto& p : training["loss_curve"]) steps.push_back(p["step"]), losses.push_back(p["loss"]);
  writeLinePng((dir / "loss.png").string(), "training loss", steps, losses, "step", "weighted cross-entropy");
  gridFigure(dir, "sinks_alpha.png", "first-token alpha per head", results["sinks"]["grid"]);
  std::vector<double> ks, sinkK = results["sinks"]["sink_k"].get<std::vector<double>>();
  for (size_t k = 0; k < sinkK.size(); ++k) ks.push_back(static_cast<double>(k));
  writeLinePng((dir / "sink_k.png").string(), "Sink_k (eps = 0.3)", ks, sinkK, "key position k", "% of heads");
  gridFigure(dir, "induction.png", "induction score per head", results["induction"]["grid"]);
  gridFigure(dir, "retrieval.png", "retrieval score per head", results["retrieval"]["grid"]);
  gridFigure(dir, "streaming.png", "streaming fraction per head", results["streaming"]["grid"]);
  gridFigure(dir, "patching_heads.png", "head patching (0 = corrupted, 1 = clean)", patchGrid);
  {
    std::vector<std::string> pos;
    for (auto id : pr.clean) pos.push_back(tok.tokenString(id));
    at::Tensor g = resid.grid.contiguous();
    writeHeatmapPng((dir / "patching_resid.png").string(), "residual stream patching, layer x position", static_cast<int>(g.size(0)),
                    static_cast<int>(g.size(1)), std::vector<double>(g.data_ptr<double>(), g.data_ptr<double>() + g.numel()),
                    labels("L", g.size(0)), pos);
  }

}

// HDF5: every probe's grids and the example prompt's attention.
void writeDemoTrace(const fs::path& dir, HookedTransformer& model, const LoadedModel& m, const nlohmann::json& results, const DemoPatching& dp,
                    const Tokenizer& tok) {
  const auto& c = model.config();
  const PatchingRequest& pr = dp.request;
  const PatchingResult& patch = dp.heads;
  {
    TraceOptions o;
    o.force = true;
    o.provenance.commandLine = "headlab-cli demo (demo_trace.h5)";
    o.provenance.seed = 0;  // the demo models train from a fixed seed
    TraceWriter w((dir / "demo_trace.h5").string(), o);
    w.writeModel(c, m.source, m.format);
    std::vector<std::string> pieces;
    for (auto id : pr.clean) pieces.push_back(tok.tokenString(id));
    w.writeInputs(pr.clean, pieces);
    for (auto& [name, r] : results.items()) {
      std::map<std::string, at::Tensor> arrays;
      for (const auto& [k, v] : plugins::headGrids(r))
        arrays[k] = at::tensor(v["values"].get<std::vector<double>>()).view({v["layers"].get<int64_t>(), v["heads"].get<int64_t>()});
      w.writeProbe(name, r["params"], arrays);
    }
    w.writeProbe("patching", {{"sweep", "heads"}, {"method", patch.method}}, {{"grid", patch.grid}});
    captureToTrace(model, pr.clean, model.hooks().match("blocks.*.attn.hook_pattern"), w);
    w.commit();
  }
}

// The report's text-model sections.
std::string textModelHtml(const LoadedModel& m, const nlohmann::json& training, const DemoEvaluation& eval, const nlohmann::json& results,
                          const DemoPatching& dp, const Tokenizer& tok) {
  const auto& c = m.model->config();
  const PatchingRequest& pr = dp.request;
  const PatchingResult& patch = dp.heads;
  const nlohmann::json patchGrid = headGrid(c, patch);
  const auto& ret = results["retrieval"];
  const auto& ind = results["induction"];
  const auto& mask = ret["masking"];
  std::ostringstream h;
  h << "<!doctype html><html><head><meta charset='utf-8'><title>HeadLab demo report</title><style>"
       "body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:.5em 0}"
       "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;font-size:12px}img{max-width:100%;border:1px solid #eee}"
       "</style></head><body>";
  h << "<h1>HeadLab demo report</h1><p>Model: " << m.source << " (GPT-2 architecture, " << c.n_layers << " layers &times; " << c.n_heads
    << " heads, d_model " << c.d_model << ", vocabulary " << c.d_vocab << " words, context " << c.n_ctx << "). Trained by HeadLab's recipe (seed "
    << training["seed"] << ", " << training["steps"] << " steps, " << fmt(training["seconds"].get<double>(), 1) << " s).</p>";
  h << "<h2>Training</h2><img src='loss.png'><p>Held-out evaluation: retrieval exact-answer accuracy <b>" << fmt(100 * eval.retrievalAccuracy, 1)
    << "%</b> (" << eval.retrievalPrompts << " prompts), next-token accuracy on the second copy of repeated sequences <b>"
    << fmt(100 * eval.inductionAccuracy, 1) << "%</b>.</p>";
  h << "<h2>Induction heads</h2><img src='induction.png'>" << htmlTable(ind["grid"]) << "<p>The best induction head is L"
    << ind["best"]["induction"]["layer"] << "H" << ind["best"]["induction"]["head"] << " with score " << fmt(ind["best"]["induction"]["score"], 3)
    << " (above 0.5 is a clear induction head); the best previous-token head is L" << ind["best"]["previous_token"]["layer"] << "H"
    << ind["best"]["previous_token"]["head"] << " (" << fmt(ind["best"]["previous_token"]["score"], 3) << ").</p>";
  h << "<h2>Retrieval heads</h2><img src='retrieval.png'>" << htmlTable(ret["grid"]) << "<p>" << ret["tests"] << " needle-in-a-haystack tests, "
    << ret["counted_tests"] << " counted (ROUGE-1 recall &gt; 0.5), NIAH accuracy " << fmt(100 * ret["niah_accuracy"].get<double>(), 1) << "%. "
    << ret["retrieval_heads"] << " heads score above 0.1.";
  if (mask.is_object())
    h << " Masking the top " << mask["k"] << " heads" << (mask["k_rule"] == "given" ? "" : " (the smallest K that halves recall; redundant retrieval heads share the work)")
      << " (" << mask["kind"].get<std::string>() << " attention, decoding only) takes NIAH accuracy from "
      << fmt(100 * mask["accuracy_unmasked"].get<double>(), 1) << "% to " << fmt(100 * mask["accuracy_top_k_masked"].get<double>(), 1)
      << "%; masking " << mask["k"] << " random heads drawn from the heads that are not retrieval heads"
      << " gives " << fmt(100 * mask["accuracy_random_k_masked"].get<double>(), 1) << "% (mean of " << mask["random_draws"].size()
      << " draws).";
  h << "</p>";
  h << "<h2>Attention sinks</h2><img src='sinks_alpha.png'><img src='sink_k.png'>" << htmlTable(results["sinks"]["grid"])
    << "<p>First-token &alpha; per head (mean attention the first token receives); Sink_1 = " << fmt(results["sinks"]["sink_1"].get<double>(), 1)
    << "% of heads have &alpha; &gt; 0.3 on the first token. Hidden sinks (ACT): "
    << results["hidden-sinks"]["hidden_sinks"].size() << " (prompt, head, key) triples above 0.1 after dropping the first sink.</p>";
  h << "<h2>Streaming vs retrieval heads</h2><img src='streaming.png'>" << htmlTable(results["streaming"]["grid"])
    << "<p>Fraction of attention inside the sink + recent window (sink " << results["streaming"]["sink_used"] << ", recent "
    << results["streaming"]["recent_used"] << " tokens); low values mark heads that reach far back, as retrieval heads must.</p>";
  h << "<h2>Massive activations</h2><p>" << results["massive"]["massive_activations"].size()
    << " activations pass |a| &gt; 100 and &ge; 1000&times; the median (a model this small has none expected); per-layer top |a|: ";
  for (const auto& l : results["massive"]["layers"]) h << "L" << l["layer"] << " " << fmt(l["top3_abs"][0].get<double>(), 1) << "; ";
  h << "</p><h2>Activation patching</h2><img src='patching_heads.png'><img src='patching_resid.png'>" << htmlTable(patchGrid)
    << "<p>Clean and corrupted prompts differ in one digit of the needle; metric logit(" << tok.tokenString(pr.answer) << ") &minus; logit("
    << tok.tokenString(pr.wrong) << ") at the last position, 0 = corrupted run, 1 = clean run (clean " << fmt(patch.cleanMetric) << ", corrupted "
    << fmt(patch.corruptedMetric) << ").</p>";
  return h.str();
}

// The report's demo-vlm sections.
std::string vlmHtml(const nlohmann::json& vlm) {
  std::ostringstream h;
  h << "<h2>Vision-aware heads (demo-vlm)</h2><img src='vhd.png'><img src='look.png'>" << htmlTable(vlm["vhd_grid"])
    << "<p>A tiny LLaVA (CLIP-style ViT, projector, LLaMA decoder) trained by HeadLab's recipe in "
    << fmt(vlm["training_seconds"].get<double>(), 1) << " s on coloured shapes on a 2 &times; 2 grid answers held-out questions with <b>"
    << fmt(100 * vlm["accuracy"].get<double>(), 1) << "%</b> accuracy. VHD (the distance between each head's output with and without the "
    << "image, at the answer position) is averaged over 24 questions; the table is after the outlier filter. Zeroing the top "
    << vlm["k"] << " heads by unfiltered VHD (K is the smallest number whose ablation halves accuracy, as for the retrieval heads) gives "
    << fmt(100 * vlm["accuracy_top_vhd_ablated"].get<double>(), 1) << "%; zeroing " << vlm["k"] << " random other heads gives "
    << fmt(100 * vlm["accuracy_random_ablated"].get<double>(), 1) << "% (mean of " << vlm["random_draws"].size() << " draws). The overlay shows, for one held-out question, where the "
    << "answer position attends over the patch grid (the <code>look</code> probe, layer 0, head average); it need not be the "
    << "cell asked about: the map is attention, not attribution (the ViT also mixes the patches before the decoder sees them).</p>";
  if (!vlm["image_patching"].is_null()) {
    const auto& ip = vlm["image_patching"];
    h << "<h3>Image patching</h3><img src='patching_image.png'><p>The held-out question <i>" << ip["question"].get<std::string>().substr(8)
      << "</i> (answer <b>" << ip["answer"].get<std::string>() << "</b>) on its scene, and on the same scene with that cell's colour changed (the model "
      << "then answers <b>" << ip["wrong"].get<std::string>() << "</b>). Each cell restores one position's residual stream from the clean run into "
      << "the corrupted one; metric logit(" << ip["answer"].get<std::string>() << ") &minus; logit(" << ip["wrong"].get<std::string>()
      << "), 0 = corrupted, 1 = clean (clean " << fmt(ip["clean_metric"].get<double>()) << ", corrupted " << fmt(ip["corrupted_metric"].get<double>())
      << "). At layer 0 the largest effect is at <code>" << ip["best_layer0"]["label"].get<std::string>() << "</code> ("
      << fmt(ip["best_layer0"]["value"].get<double>()) << "); text positions there are plain token embeddings and restore nothing.</p>";
  }
  return h.str();
}
}  // namespace

int runDemo(const std::string& outDir) {
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  int argc = 1;
  char name[] = "headlab-cli";
  char* argv[] = {name, nullptr};
  QGuiApplication app(argc, argv);  // fonts for the PNG figures

  const fs::path dir(outDir.empty() ? "demo-report" : outDir);
  fs::create_directories(dir);
  const bool cached = fs::exists(fs::path(demoCacheDir()) / "config.json");
  std::cerr << (cached ? "demo: loading the cached demo model\n" : "demo: training the demo model (once; cached afterwards)\n");
  SessionOptions opt;
  opt.load.progress = progressBar;
  LoadedModel m = std::move(openModelSession("demo", opt).loaded);
  std::cerr << "\n";
  HookedTransformer& model = *m.model;
  const Tokenizer& tok = *m.tokenizer;
  const auto& c = model.config();
  nlohmann::json training = readJsonFile((fs::path(m.source) / "training.json").string());

  std::cerr << "demo: evaluating on held-out prompts\n";
  DemoEvaluation eval = evaluateDemo(model, tok, 100, 99, c.n_ctx - 20);

  DemoTasks tasks(7);
  const nlohmann::json results = demoProbes(model, tok, tasks);
  const DemoPatching dp = demoPatching(model, tok, tasks);
  writeDemoFigures(dir, training, results, dp, c, tok);
  writeDemoTrace(dir, model, m, results, dp, tok);
  const nlohmann::json vlm = vlmSection(dir);
  std::ofstream(dir / "results.json") << nlohmann::json({{"evaluation", {{"retrieval_accuracy", eval.retrievalAccuracy}, {"induction_accuracy", eval.inductionAccuracy}}},
                                                          {"probes", results}, {"patching", dp.heads.toJson()}, {"demo_vlm", vlm}}).dump(1);
  std::ostringstream h;
  h << textModelHtml(m, training, eval, results, dp, tok) << vlmHtml(vlm);
  h << "<p>Traces: <code>demo_trace.h5</code> (probe grids and the example prompt's attention); all numbers: <code>results.json</code>.</p></body></html>";
  {
    std::ofstream out(dir / "report.html.part");
    out << h.str();
  }
  fs::rename(dir / "report.html.part", dir / "report.html");
  std::cout << (dir / "report.html").string() << "\n";
  return 0;
}

}  // namespace headlab::cli
