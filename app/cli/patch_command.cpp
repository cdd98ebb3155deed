// headlab-cli patch: activation, attribution and path patching of one prompt pair or a prompt set.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "headlab/core/errors.h"
#include "headlab/core/patching.h"
#include "headlab/core/provenance.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/trace.h"
#include "headlab/core/vision_language.h"

namespace headlab::cli {

namespace {
struct PairStats {
  at::Tensor mean, std;
};

// The clean and corrupted runs of `patch`: prompts (and, on a vision-language model, the spliced
// images: --corrupted defaults to --clean and --corrupted-image to --image, so the picture alone may
// change), the answer pair and the sweep. imageSpan: the clean prompt's image positions.
headlab::PatchingRequest patchRequest(const Args& a, OpenedModel& o, std::pair<int64_t, int64_t>& imageSpan) {
  const headlab::Tokenizer* tok = o.loaded.tokenizer.get();
  headlab::PatchingRequest r;
  r.clean = promptIds(a, tok, "clean");
  r.corrupted = o.vlm && !a.has("corrupted") && !a.has("corrupted-ids") ? r.clean : promptIds(a, tok, "corrupted");
  imageSpan = {-1, -1};
  if (o.vlm) {
    headlab::VlmInput clean = o.prepare(r.clean);
    imageSpan = {clean.imageBegin, clean.imageEnd};
    const at::Tensor corruptedPixels = a.has("corrupted-image") ? readImage(a.get("corrupted-image"), o.vlm->visionConfig()) : o.pixels;
    headlab::VlmInput corrupted = o.prepare(r.corrupted, corruptedPixels);
    r.cleanEmbeds = clean.embeds, r.corruptedEmbeds = corrupted.embeds;
  }
  r.answer = answerToken(a, tok, "answer");
  r.wrong = answerToken(a, tok, "wrong");
  r.sweep = a.get("sweep") == "path" ? headlab::SweepKind::Heads : headlab::sweepKindFromString(a.get("sweep", "heads"));
  r.direction = a.has("noising") ? headlab::PatchDirection::Noising : headlab::PatchDirection::Denoising;
  return r;
}

headlab::PatchingResult runPatch(const Args& a, headlab::HookedTransformer& model, const headlab::PatchingRequest& r, const std::string& method) {
  auto progress = [](double f, const std::string&) {
    std::cerr << "\rpatch: " << static_cast<int>(f * 100) << "%" << std::flush;
    return true;
  };
  headlab::PatchingResult result;
  if (a.get("sweep") == "path") {
    const std::string receiver = a.require("receiver");
    const auto dot = receiver.find('.');
    if (dot == std::string::npos) throw headlab::InputError("--receiver must be LAYER.HEAD, e.g. 4.2");
    result = headlab::patchPath(model, r, std::stoi(receiver.substr(0, dot)), std::stoi(receiver.substr(dot + 1)),
                                headlab::pathInputFromString(a.get("input", "v")), progress);
  } else {
    result = method == "attribution" ? headlab::patchAttribution(model, r, progress) : headlab::patchBatched(model, r, progress);
  }
  std::cerr << "\n";
  for (const std::string& w : result.warnings) std::cerr << "warning: " << w << "\n";
  return result;
}

// The ten largest cells of a sweep, labelled by axis (and token piece for positions).
void printPatchSummary(const nlohmann::json& j, const headlab::PatchingResult& result, const std::vector<std::string>& pieces) {
  std::cout << "patching " << j["sweep"].get<std::string>() << " (" << result.method << "), clean " << result.cleanMetric
            << ", corrupted " << result.corruptedMetric << "; 0 = corrupted, 1 = clean\n";
  // Cells that were not computed (NaN: path patching's non-senders) are never ranked.
  at::Tensor flat = result.grid.flatten().to(at::kDouble);
  const int64_t computed = at::isfinite(flat).sum().item<int64_t>();
  at::Tensor idx = std::get<1>(at::where(at::isfinite(flat), flat.abs(), at::full_like(flat, -1.0)).topk(std::min<int64_t>(10, computed)));
  auto shape = result.grid.sizes().vec();
  for (int64_t i = 0; i < idx.size(0); ++i) {
    int64_t k = idx[i].item<int64_t>(), rest = k;
    std::string where;
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      const int64_t at = rest % shape[d];
      const bool named = result.axes[d] == "pos" || (d < static_cast<int64_t>(result.gridAxes.size()) && !result.gridAxes[d].labels.empty());
      const auto labels = d < static_cast<int64_t>(result.gridAxes.size()) ? headlab::sweepAxisLabels(result.gridAxes[d], pieces) : pieces;
      const std::string label = named && at < static_cast<int64_t>(labels.size()) ? " '" + labels[at] + "'" : "";
      where = result.axes[d] + " " + std::to_string(at) + label + (where.empty() ? "" : ", ") + where;
      rest /= shape[d];
    }
    std::cout << "  " << where << ": " << flat[k].item<double>() << "\n";
  }
  if (j.contains("attribution_vs_exact_correlation"))
    std::cout << "attribution vs exact correlation: " << j["attribution_vs_exact_correlation"].get<double>() << "\n";
}

void writePatchTrace(const Args& a, const headlab::ModelConfig& config, const headlab::LoadedModel& m, const headlab::PatchingRequest& r,
                     const headlab::PatchingResult& result, const nlohmann::json& j, const std::vector<std::string>& pieces) {
  nlohmann::json params = j["parameters"];
  params["sweep"] = headlab::toString(r.sweep);
  params["method"] = result.method;
  params["axes"] = result.axes;
  if (outputFormat(a) != "hdf5") {
    writeArrayFile(a, config, m.source, m.format, "headlab.patching", {{"grid", result.grid}},
                   {{"params", params.dump(-1, ' ', true)}, {"tokens", nlohmann::json(r.clean).dump()},
                    {"token_strings", nlohmann::json(pieces).dump(-1, ' ', true)}});
    return;
  }
  headlab::TraceOptions opts = traceOptions(a);
  headlab::TraceWriter w(a.get("out"), opts);
  w.writeModel(config, m.source, m.format);
  w.writeInputs(r.clean, pieces);
  w.writeProbe("patching", params, {{"grid", result.grid}});
  if (m.model) w.noteAttention(m.model->attentionUsed());
  w.commit();
}

// The mean and standard deviation over pairs, cell by cell (float64). headlab-cli merge computes the
// same from the shards' grids, so a merged file equals the unsharded one bit for bit.
PairStats pairStats(const std::vector<at::Tensor>& grids) {
  const at::Tensor all = at::stack(grids);  // [pairs, ...grid]
  return {all.mean(0), grids.size() > 1 ? all.std(0) : at::zeros_like(all[0])};
}

// patch --pairs --out: /probes/patching_pairs holds each pair of this run's share (grids, metrics, lines),
// the parameters, which share (shard_index / shard_count, pairs [pair_begin, pair_end) of pairs_total)
// and the experiment's identity (a SHA-256 of the model's files, the pairs file and the parameters);
// the mean and standard deviation only when the file holds every pair (unsharded, or merged).
void writePairsTrace(const Args& a, OpenedModel& o, const headlab::PatchingResult& last, const std::vector<at::Tensor>& grids,
                     const nlohmann::json& perPair, const Shard& shard, int64_t begin, int64_t end, int64_t total) {
  if (outputFormat(a) != "hdf5") throw headlab::InputError("patch --pairs --out writes HDF5 (drop --format " + outputFormat(a) + ")");
  headlab::TraceOptions opts = traceOptions(a);
  opts.provenance.extraFiles.push_back(a.get("pairs"));
  headlab::TraceWriter w(a.get("out"), opts);
  w.writeModel(o.model().config(), o.loaded.source, o.loaded.format);
  const nlohmann::json& record = w.provenanceRecord();
  nlohmann::json identity = {{"sweep", headlab::toString(last.sweep)}, {"method", last.method}, {"noising", a.has("noising")},
                             {"pairs_sha256", headlab::sha256File(a.get("pairs"))}, {"pairs_total", total}, {"dtype", record["dtype"]}};
  for (const auto& f : record["model"]["files"]) identity["model_sha256"].push_back(f["sha256"]);
  nlohmann::json params = {{"sweep", identity["sweep"]}, {"method", last.method}, {"direction", a.has("noising") ? "noising" : "denoising"},
                           {"axes", nlohmann::json(last.axes).dump()}, {"shape", nlohmann::json(last.grid.sizes().vec()).dump()},
                           {"metric", "logit_diff"}, {"normalisation", "0 = corrupted run, 1 = clean run"},
                           {"pairs_sha256", identity["pairs_sha256"]}, {"pairs_total", total}, {"shard_index", shard.index},
                           {"shard_count", shard.count}, {"pair_begin", begin}, {"pair_end", end},
                           {"experiment", headlab::sha256Hex(identity.dump().data(), identity.dump().size())}};
  std::vector<double> clean, corrupted, lines;
  for (const auto& p : perPair) clean.push_back(p["clean_metric"]), corrupted.push_back(p["corrupted_metric"]), lines.push_back(p["line"].get<double>());
  std::map<std::string, at::Tensor> arrays = {{"grids", at::stack(grids)}, {"clean_metric", at::tensor(clean, at::kDouble)},
                                              {"corrupted_metric", at::tensor(corrupted, at::kDouble)}, {"line", at::tensor(lines, at::kDouble)}};
  if (shard.count == 1) {
    const PairStats stats = pairStats(grids);
    arrays["mean"] = stats.mean, arrays["std"] = stats.std;
  }
  w.writeProbe("patching_pairs", params, arrays);
  w.noteAttention(o.model().attentionUsed());
  w.commit();
}

// patch --pairs F.jsonl: one sweep per line ({"clean", "corrupted", "answer", "wrong"}), their mean and
// standard deviation cell by cell, and each pair's metrics and grid. Sweeps over positions need the
// pairs to share one length (a position means nothing across lengths); the heads sweep takes any.
int cmdPatchPairs(const Args& a, OpenedModel& o, const std::string& method) {
  if (o.vlm) throw headlab::InputError("--pairs runs on text models (the pairs file has no images)");
  if (!o.loaded.tokenizer) throw headlab::TokenizerError(o.loaded.source + ": --pairs needs the model's tokenizer (its lines are text)");
  if (method == "both" || a.get("sweep") == "path") throw headlab::InputError("--pairs takes --method exact or attribution and a sweep other than path");
  std::ifstream in(a.get("pairs"));
  if (!in) throw headlab::IoError(a.get("pairs") + ": cannot open");
  const auto& tok = *o.loaded.tokenizer;
  std::vector<at::Tensor> grids;
  nlohmann::json perPair = nlohmann::json::array();
  headlab::PatchingResult last;
  std::vector<std::pair<int64_t, headlab::PatchingRequest>> requests;  // (line, request)
  int64_t lineNo = 0, length = -1;
  for (std::string line; std::getline(in, line);) {
    ++lineNo;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json p;
    try {
      p = nlohmann::json::parse(line);
      for (const char* k : {"clean", "corrupted", "answer", "wrong"})
        if (!p.contains(k) || !p[k].is_string()) throw headlab::InputError(std::string("missing string '") + k + "'");
    } catch (const std::exception& e) {
      throw headlab::InputError(a.get("pairs") + ":" + std::to_string(lineNo) + ": " + e.what() + " (expected {\"clean\", \"corrupted\", \"answer\", \"wrong\"})");
    }
    headlab::PatchingRequest r;
    r.clean = tok.encode(p["clean"].get<std::string>(), true), r.corrupted = tok.encode(p["corrupted"].get<std::string>(), true);
    r.answer = headlab::resolveSingleToken(tok, p["answer"].get<std::string>()), r.wrong = headlab::resolveSingleToken(tok, p["wrong"].get<std::string>());
    r.sweep = headlab::sweepKindFromString(a.get("sweep", "heads"));
    r.direction = a.has("noising") ? headlab::PatchDirection::Noising : headlab::PatchDirection::Denoising;
    if (r.sweep != headlab::SweepKind::Heads && length >= 0 && static_cast<int64_t>(r.clean.size()) != length)
      throw headlab::InputError(a.get("pairs") + ":" + std::to_string(lineNo) + ": " + std::to_string(r.clean.size()) + " tokens, the pairs before have " +
                                std::to_string(length) + "; a " + a.get("sweep") + " sweep averages positions, so its pairs need one length");
    length = static_cast<int64_t>(r.clean.size());
    requests.emplace_back(lineNo, std::move(r));
  }
  if (requests.empty()) throw headlab::InputError(a.get("pairs") + ": no pairs");
  const int64_t total = static_cast<int64_t>(requests.size());
  const Shard shard = shardOf(a);
  if (shard.count > total)
    throw headlab::InputError("--shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + ": more shards than the " +
                              std::to_string(total) + " pairs of " + a.get("pairs"));
  const int64_t begin = shard.begin(total), end = shard.end(total);
  // Every line was read and checked before the first sweep runs: a bad line fails at once.
  for (int64_t i = begin; i < end; ++i) {
    const auto& [line, r] = requests[static_cast<size_t>(i)];
    std::cerr << "pair " << i + 1 << "/" << total << (shard.count > 1 ? " (shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + ")" : "") << ": ";
    last = runPatch(a, o.model(), r, method);
    // float32, as the file stores it: a merge of shards then computes the same mean bit for bit.
    grids.push_back(last.grid.to(at::kFloat).to(at::kDouble));
    perPair.push_back({{"line", line}, {"clean_metric", last.cleanMetric}, {"corrupted_metric", last.corruptedMetric},
                       {"grid", std::vector<double>(grids.back().data_ptr<double>(), grids.back().data_ptr<double>() + grids.back().numel())}});
    if (!last.warnings.empty()) perPair.back()["warnings"] = last.warnings;
  }
  const PairStats stats = pairStats(grids);
  auto flat = [](const at::Tensor& t) { at::Tensor c = t.contiguous(); return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel()); };
  nlohmann::json j = {{"pairs", grids.size()}, {"sweep", headlab::toString(last.sweep)}, {"method", last.method}, {"axes", last.axes},
                      {"shape", last.grid.sizes().vec()}, {"metric", "logit_diff"}, {"normalisation", "0 = corrupted run, 1 = clean run"},
                      {"mean", flat(stats.mean)}, {"std", flat(stats.std)}, {"per_pair", perPair}, {"parameters", {{"pairs_file", a.get("pairs")}, {"model", o.loaded.source}}}};
  if (shard.count > 1)
    j["shard"] = {{"index", shard.index}, {"count", shard.count}, {"pair_begin", begin}, {"pair_end", end}, {"pairs_total", total}};
  if (a.has("out")) writePairsTrace(a, o, last, grids, perPair, shard, begin, end, total);
  if (a.has("json")) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  headlab::PatchingResult summary = last;
  summary.grid = stats.mean.to(at::kFloat);
  printPatchSummary({{"sweep", j["sweep"]}}, summary, {});
  std::cout << "(mean over " << grids.size() << " pairs" << (shard.count > 1 ? " of this shard" : "") << "; --json gives the standard deviation and each pair)\n";
  if (a.has("out")) std::cout << a.get("out") << "\n";
  return 0;
}

}  // namespace

int cmdPatch(const Args& a) {
  auto o = openAny(a, !a.has("clean-ids"));
  headlab::HookedTransformer& model = o.model();
  const std::string method = a.get("method", "exact");
  if (method != "exact" && method != "attribution" && method != "both")
    throw headlab::InputError("unknown --method '" + method + "' (expected exact, attribution or both)");
  if (a.has("pairs")) return cmdPatchPairs(a, o, method);
  std::pair<int64_t, int64_t> imageSpan;
  const headlab::PatchingRequest r = patchRequest(a, o, imageSpan);
  const headlab::PatchingResult result = runPatch(a, model, r, method);
  std::vector<std::string> pieces;
  if (o.loaded.tokenizer)
    pieces = headlab::positionLabels(*o.loaded.tokenizer, r.clean, o.vlm ? &o.vlm->visionConfig() : nullptr, imageSpan.first, imageSpan.second);
  else
    for (int64_t id : r.clean) pieces.push_back("#" + std::to_string(id));
  nlohmann::json j = result.toJson(pieces);
  j["parameters"] = {{"clean", a.get("clean")}, {"corrupted", a.get("corrupted", a.get("clean"))}, {"answer", a.get("answer")},
                     {"wrong", a.get("wrong")}, {"answer_id", r.answer}, {"wrong_id", r.wrong}, {"model", o.loaded.source}};
  if (method == "both" && a.get("sweep") != "path") {
    headlab::PatchingResult attr = headlab::patchAttribution(model, r);
    at::Tensor pair = at::stack({result.grid.flatten().to(at::kDouble), attr.grid.flatten().to(at::kDouble)});
    j["attribution"] = attr.toJson();
    j["attribution_vs_exact_correlation"] = at::corrcoef(pair)[0][1].item<double>();
  }
  if (o.vlm) j["parameters"]["image"] = a.get("image"), j["parameters"]["corrupted_image"] = a.get("corrupted-image", a.get("image"));
  if (a.has("out")) writePatchTrace(a, model.config(), o.loaded, r, result, j, pieces);
  if (a.has("json")) std::cout << j.dump() << "\n";
  else printPatchSummary(j, result, pieces);
  return 0;
}

}  // namespace headlab::cli
