// headlab-cli: the scriptable front end. Results on stdout, logs and progress on stderr,
// exit 0 on success, non-zero with one "error: ..." line on failure (PRODUCT.md §6).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include <QImage>

#include "cli_args.h"
#include "demo_command.h"
#include "headlab/core/errors.h"
#include "headlab/core/generate.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/patching.h"
#include "headlab/core/startup.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/trace.h"
#include "headlab/core/demo_vlm.h"
#include "headlab/core/vision_language.h"
#include "headlab/plugins/probe_plugin.h"

namespace {

using headlab::cli::Args;

// The text before and after the command table in --help.
const char* kUsageHead = "usage: headlab-cli <command> [options]\n\ncommands:\n";
const char* kUsageTail = R"(
  M: a Hugging Face folder, a .gguf, a llama2.c .bin, or a cached Hugging Face name.
options: --version, --help, --threads N, --max-model-mb N (refuse a load whose weights need more; default: the memory available)
)";

// Reads an image file (any format Qt reads: PNG, JPEG, BMP, PPM, ...) and preprocesses it for the
// model's vision tower.
at::Tensor readImage(const std::string& path, const headlab::VisionTowerConfig& c) {
  QImage img(QString::fromStdString(path));
  if (img.isNull()) throw headlab::IoError(path + ": cannot read the image (PNG, JPEG, BMP or PPM expected)");
  img = img.convertToFormat(QImage::Format_RGB888);
  std::vector<uint8_t> rgb;
  rgb.reserve(static_cast<size_t>(img.width()) * img.height() * 3);
  for (int y = 0; y < img.height(); ++y) {
    const uchar* row = img.constScanLine(y);
    rgb.insert(rgb.end(), row, row + img.width() * 3);
  }
  return headlab::clipPreprocess(rgb, img.width(), img.height(), c);
}

headlab::LoadedModel open(const Args& a) {
  headlab::LoadOptions o;
  o.tokenizerPath = a.get("tokenizer");
  o.device = a.get("device", "cpu");
  o.dtype = a.get("dtype", "float32");
  o.maxBytes = static_cast<uint64_t>(a.integer("max-model-mb", 0)) << 20;
  return headlab::loadModel(a.require("model"), o);
}

// Any model the CLI takes: a text model, or a vision-language one (a LLaVA folder or demo-vlm,
// trained on first use) with the image of --image. Text commands run on its decoder.
struct OpenedModel {
  headlab::LoadedModel loaded;                        // the text model, or the VLM's tokenizer and source
  std::unique_ptr<headlab::VisionLanguageModel> vlm;  // set for vision-language models
  at::Tensor pixels;                                  // --image, preprocessed (undefined without)
  headlab::HookedTransformer& model() { return vlm ? vlm->language() : *loaded.model; }
  // The prompt's ids; with an image, the placeholder goes after BOS unless the prompt has one.
  // Returns the decoder's input: embeddings with the image spliced in (undefined for text models).
  headlab::VlmInput prepare(std::vector<int64_t>& ids) { return prepare(ids, pixels); }
  // The same with another image (the corrupted run of patching).
  headlab::VlmInput prepare(std::vector<int64_t>& ids, const at::Tensor& image) {
    if (!vlm) return {};
    if (image.defined()) ids = headlab::withImagePlaceholder(ids, vlm->visionConfig().image_token_id, loaded.tokenizer ? loaded.tokenizer->bos() : -1);
    headlab::VlmInput in = vlm->prepare(ids, image);
    ids = in.ids;
    return in;
  }
};

OpenedModel openAny(const Args& a, bool tokenizerRequired = true) {
  OpenedModel o;
  std::string spec = a.require("model");
  if (spec == "demo-vlm")
    spec = headlab::ensureDemoVlm([](double f, const std::string& stage) {
      std::cerr << "\r" << static_cast<int>(f * 100) << "% " << stage << "        " << std::flush;
      return true;
    });
  if (headlab::isLlavaFolder(spec)) {
    o.vlm = headlab::loadLlava(spec);
    o.vlm->to(headlab::parseDevice(a.get("device", "cpu")), headlab::parseDtype(a.get("dtype", "float32")));
    o.loaded.source = spec, o.loaded.format = "llava";
    try {
      o.loaded.tokenizer = headlab::loadTokenizer(a.get("tokenizer").empty() ? spec : a.get("tokenizer"));
    } catch (const headlab::IoError&) {
      if (tokenizerRequired) throw;
    }
    if (a.has("image")) o.pixels = readImage(a.get("image"), o.vlm->visionConfig());
  } else {
    for (const char* flag : {"image", "corrupted-image"})
      if (a.has(flag))
        throw headlab::InputError(std::string("--") + flag + " needs a vision-language model (a LLaVA folder or demo-vlm); " + spec + " is not one");
    o.loaded = open(a);
  }
  if (tokenizerRequired && !o.loaded.tokenizer) throw headlab::TokenizerError(o.loaded.source + ": no tokenizer found; pass --tokenizer");
  return o;
}

// The prompt as ids: --ids "0,0,2,1" (taken as given, no tokenizer needed), else --prompt encoded
// with BOS by the model's tokenizer.
// "0,5,7" (commas or spaces) as token ids; `flag` names the option in errors.
std::vector<int64_t> parseIds(const std::string& text, const std::string& flag) {
  std::vector<int64_t> ids;
  std::string list = text;
  std::replace(list.begin(), list.end(), ',', ' ');
  std::istringstream in(list);
  for (std::string item; in >> item;) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(item, &used);
    } catch (const std::exception&) {
    }
    if (used != item.size() || id < 0) throw headlab::InputError(flag + ": '" + item + "' is not a token id (expected e.g. " + flag + " 0,0,2,1)");
    ids.push_back(id);
  }
  if (ids.empty()) throw headlab::InputError("empty prompt (" + flag + " \"\")");
  return ids;
}

// A prompt given as text (--TEXT, encoded with BOS) or as ids (--TEXT-ids, or --ids for --prompt).
std::vector<int64_t> promptIds(const Args& a, const headlab::Tokenizer* tok, const std::string& textKey = "prompt") {
  const std::string idsKey = textKey == "prompt" ? "ids" : textKey + "-ids";
  if (a.has(idsKey)) return parseIds(a.get(idsKey), "--" + idsKey);
  const std::string prompt = a.require(textKey);
  if (prompt.empty()) throw headlab::InputError("empty prompt (--" + textKey + " \"\")");
  if (!tok) throw headlab::TokenizerError("no tokenizer found; pass --tokenizer, or give the prompt as ids with --" + idsKey + " 0,5,7");
  return tok->encode(prompt, true);
}

// --answer / --wrong: "#id" needs no tokenizer; a piece or word needs one.
int64_t answerToken(const Args& a, const headlab::Tokenizer* tok, const std::string& key) {
  const std::string v = a.require(key);
  if (!tok) {
    if (v.size() < 2 || v[0] != '#') throw headlab::TokenizerError("no tokenizer found: give --" + key + " as a token id, e.g. #42");
    return parseIds(v.substr(1), "--" + key).at(0);
  }
  return headlab::resolveSingleToken(*tok, v);
}

int cmdInfo(const Args& a) {
  auto o = openAny(a, false);
  nlohmann::json j = headlab::configToJson(o.model().config());
  j["format"] = o.loaded.format;
  j["source"] = o.loaded.source;
  j["tokenizer"] = o.loaded.tokenizer ? o.loaded.tokenizer->kind() : "none";
  // The element types read (tensor counts), shown when anything is not plain float32.
  if (o.loaded.storedTypes.size() > 1 || (o.loaded.storedTypes.size() == 1 && !o.loaded.storedTypes.count("F32")))
    j["stored_types"] = o.loaded.storedTypes;
  if (o.vlm) {
    const auto& vc = o.vlm->visionConfig();
    j["vision"] = headlab::configToJson(o.vlm->vision().config());
    j["vision"]["image_size"] = vc.image_size, j["vision"]["patch_size"] = vc.patch_size;
    j["vision"]["image_tokens"] = vc.imageTokens(), j["vision"]["image_token_id"] = vc.image_token_id;
  }
  std::cout << j.dump(2) << "\n";
  return 0;
}

void printIds(const std::vector<int64_t>& ids) {
  for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
  std::cout << "\n";
}

std::string readText(const Args& a) {
  if (a.has("text")) return a.get("text");
  if (a.has("text-file")) {
    std::ifstream in(a.get("text-file"), std::ios::binary);
    if (!in) throw headlab::IoError(a.get("text-file") + ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  throw std::invalid_argument("missing --text or --text-file");
}

int cmdTokenize(const Args& a) {
  std::unique_ptr<headlab::Tokenizer> tok;
  if (a.has("tokenizer")) {
    tok = headlab::loadTokenizer(a.get("tokenizer"));
  } else {
    tok = std::move(openAny(a).loaded.tokenizer);
  }
  auto ids = tok->encode(readText(a), !a.has("no-bos"));
  for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
  std::cout << "\n";
  return 0;
}

int cmdGenerate(const Args& a) {
  auto o = openAny(a, !a.has("ids"));
  auto& m = o.loaded;
  auto ids = promptIds(a, m.tokenizer.get());
  headlab::GenerateOptions g;
  g.maxNewTokens = a.integer("max-tokens", o.vlm ? 16 : 64);
  // llama2.c -n N runs N forwards (positions 0..N-1), prompt included: N + 1 - P new tokens.
  if (a.has("steps")) g.maxNewTokens = a.integer("steps", 64) + 1 - static_cast<long long>(ids.size());
  // Image questions are answered greedily unless a temperature is asked for.
  g.greedy = a.has("greedy") || (o.vlm && !a.has("temperature"));
  g.temperature = std::stod(a.get("temperature", "1.0"));
  g.topP = std::stod(a.get("top-p", "0.9"));
  g.seed = static_cast<uint64_t>(a.integer("seed", 0));
  if (o.vlm) {
    // The spliced prompt runs once into a KV cache; each answer token is one position.
    headlab::VlmInput in = o.prepare(ids);
    auto answer = headlab::generateFromEmbeddings(o.model(), in.embeds, g, -1, m.tokenizer ? m.tokenizer->eos() : -1);
    if (!m.tokenizer) return printIds(answer), 0;
    std::cout << a.get("prompt", m.tokenizer->decode(ids)) << " " << m.tokenizer->decode(answer) << "\n";
    return 0;
  }
  const auto& c = m.model->config();
  auto out = headlab::generate(*m.model, ids, g, m.tokenizer ? m.tokenizer->bos() : c.bos_token_id, m.tokenizer ? m.tokenizer->eos() : c.eos_token_id);
  if (!m.tokenizer) {  // a model without a tokenizer: the prompt's and the new ids
    ids.insert(ids.end(), out.begin(), out.end());
    return printIds(ids), 0;
  }
  std::cout << headlab::renderGeneration(*m.tokenizer, ids, out) << "\n";
  return 0;
}

int cmdCapture(const Args& a) {
  // A vision-language model (LLaVA folder, demo-vlm) captures its decoder on the prompt with the
  // image (--image) spliced in; the trace also holds the image and its span.
  auto o = openAny(a, !a.has("ids"));
  auto& m = o.loaded;
  headlab::HookedTransformer& model = o.model();
  auto ids = promptIds(a, m.tokenizer.get());
  std::vector<std::string> hooks;
  std::stringstream globs(a.require("hooks"));
  for (std::string g; std::getline(globs, g, ',');)
    for (auto& h : model.hooks().match(g)) hooks.push_back(h);
  headlab::VlmInput image = o.prepare(ids);
  const double mb = headlab::estimateCaptureBytes(model, hooks, static_cast<int64_t>(ids.size())) / 1e6;
  std::cerr << "capture: " << hooks.size() << " hook points, " << ids.size() << " tokens, about " << mb
            << " MB in memory and at most as much on disk\n";
  const double budget = static_cast<double>(a.integer("max-mb", 4096));
  if (mb > budget)
    throw headlab::InputError("capture would need about " + std::to_string(static_cast<long long>(mb)) + " MB, over the budget of " +
                              std::to_string(static_cast<long long>(budget)) + " MB; capture fewer hooks or raise --max-mb");
  headlab::TraceOptions options;
  options.force = a.has("force");
  options.gzipLevel = static_cast<int>(a.integer("gzip", 0));
  options.float16 = a.has("fp16");
  headlab::TraceWriter writer(a.require("out"), options);
  writer.writeModel(model.config(), m.source, m.format);
  std::vector<std::string> pieces;
  for (auto id : ids) pieces.push_back(m.tokenizer ? m.tokenizer->tokenString(id) : "#" + std::to_string(id));
  writer.writeInputs(ids, pieces);
  if (image.imageBegin >= 0) writer.writeImage(o.pixels, image.imageBegin, image.imageEnd);
  writer.writeInterventions(nlohmann::json::array());
  headlab::captureToTrace(model, ids, hooks, writer, [](int done, int total) {
    std::cerr << "\rcapture: " << done << "/" << total << (done == total ? "\n" : "") << std::flush;
    return true;
  }, o.vlm ? image.embeds : at::Tensor());
  writer.commit();
  std::cout << a.get("out") << "\n";
  return 0;
}

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
  auto progress = [](double f) {
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
    result = method == "attribution" ? headlab::patchAttribution(model, r) : headlab::patchBatched(model, r, progress);
  }
  std::cerr << "\n";
  return result;
}

// The ten largest cells of a sweep, labelled by axis (and token piece for positions).
void printPatchSummary(const nlohmann::json& j, const headlab::PatchingResult& result, const std::vector<std::string>& pieces) {
  std::cout << "patching " << j["sweep"].get<std::string>() << " (" << result.method << "), clean " << result.cleanMetric
            << ", corrupted " << result.corruptedMetric << "; 0 = corrupted, 1 = clean\n";
  at::Tensor flat = result.grid.flatten();
  at::Tensor idx = std::get<1>(flat.abs().topk(std::min<int64_t>(10, flat.numel())));
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
  headlab::TraceOptions opts;
  opts.force = a.has("force");
  headlab::TraceWriter w(a.get("out"), opts);
  w.writeModel(config, m.source, m.format);
  w.writeInputs(r.clean, pieces);
  nlohmann::json params = j["parameters"];
  params["sweep"] = headlab::toString(r.sweep);
  params["method"] = result.method;
  params["axes"] = result.axes;
  w.writeProbe("patching", params, {{"grid", result.grid}});
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
        if (!p.contains(k) || !p[k].is_string()) throw std::invalid_argument(std::string("missing string '") + k + "'");
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
  // Every line was read and checked before the first sweep runs: a bad line fails at once.
  for (const auto& [line, r] : requests) {
    std::cerr << "pair " << perPair.size() + 1 << "/" << requests.size() << ": ";
    last = method == "attribution" ? headlab::patchAttribution(o.model(), r) : runPatch(a, o.model(), r, method);
    grids.push_back(last.grid.to(at::kDouble));
    perPair.push_back({{"line", line}, {"clean_metric", last.cleanMetric}, {"corrupted_metric", last.corruptedMetric},
                       {"grid", std::vector<double>(grids.back().data_ptr<double>(), grids.back().data_ptr<double>() + grids.back().numel())}});
  }
  at::Tensor all = at::stack(grids);  // [pairs, ...grid]
  at::Tensor mean = all.mean(0), sd = grids.size() > 1 ? all.std(0) : at::zeros_like(mean);
  auto flat = [](const at::Tensor& t) { at::Tensor c = t.contiguous(); return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel()); };
  nlohmann::json j = {{"pairs", grids.size()}, {"sweep", headlab::toString(last.sweep)}, {"method", last.method}, {"axes", last.axes},
                      {"shape", last.grid.sizes().vec()}, {"metric", "logit_diff"}, {"normalisation", "0 = corrupted run, 1 = clean run"},
                      {"mean", flat(mean)}, {"std", flat(sd)}, {"per_pair", perPair}, {"parameters", {{"pairs_file", a.get("pairs")}, {"model", o.loaded.source}}}};
  if (a.has("json")) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  headlab::PatchingResult summary = last;
  summary.grid = mean.to(at::kFloat);
  printPatchSummary({{"sweep", j["sweep"]}}, summary, {});
  std::cout << "(mean over " << grids.size() << " pairs; --json gives the standard deviation and each pair)\n";
  return 0;
}

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

int cmdProbe(const Args& a) {
  auto& registry = headlab::plugins::ProbeRegistry::instance();
  if (a.has("list") || a.positional().empty()) {
    for (const auto& n : registry.names()) {
      auto p = registry.create(n);
      std::cout << n << ": " << p->description() << "\n";
      for (const auto& param : p->parameters())
        std::cout << "    " << param.name << " = " << param.defaultValue.dump() << "  (" << param.help << ")\n";
    }
    return a.positional().empty() && !a.has("list") ? 2 : 0;
  }
  const std::string name = a.positional()[0];
  auto probe = registry.create(name);
  // A LLaVA folder loads as a vision-language model: its decoder runs the text probes, and the
  // vision probes also get the tower and the image.
  // Without a tokenizer a vision-language model still runs prompts given as ids ("tokens").
  auto o = openAny(a, false);
  if (!o.vlm && !o.loaded.tokenizer) throw headlab::TokenizerError(o.loaded.source + ": no tokenizer found; pass --tokenizer");
  auto& m = o.loaded;
  auto& vlm = o.vlm;
  auto& pixels = o.pixels;
  headlab::HookedTransformer& model = o.model();
  nlohmann::json params = nlohmann::json::object();
  if (a.has("params")) {
    try {
      params = nlohmann::json::parse(a.get("params"));
    } catch (const nlohmann::json::exception&) {
      throw headlab::InputError("--params is not valid JSON: " + a.get("params"));
    }
    if (!params.is_object()) throw headlab::InputError("--params must be a JSON object, e.g. '{\"eps\": 0.3}'");
  }
  if (a.has("prompt")) params["prompt"] = a.get("prompt");
  if (a.has("prompts-file")) {
    std::ifstream in(a.get("prompts-file"));
    if (!in) throw headlab::IoError(a.get("prompts-file") + ": cannot open");
    nlohmann::json prompts = nlohmann::json::array();
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
    params["prompts"] = prompts;
  }
  headlab::plugins::ProbeContext ctx{model, m.tokenizer.get(), params, [](double f, const std::string& stage) {
                                       std::cerr << "\rprobe: " << static_cast<int>(f * 100) << "% " << stage << "        " << std::flush;
                                       return true;
                                     }};
  ctx.vlm = vlm.get();
  ctx.pixels = pixels.defined() ? &pixels : nullptr;
  nlohmann::json result = probe->run(ctx);
  std::cerr << "\n";
  result["model"] = m.source;
  if (a.has("out")) {
    headlab::TraceOptions opts;
    opts.force = a.has("force");
    headlab::TraceWriter w(a.get("out"), opts);
    w.writeModel(model.config(), m.source, m.format);
    std::map<std::string, at::Tensor> arrays;
    for (auto& [key, value] : result.items())
      if (value.is_object() && value.contains("values") && value.contains("layers") && value.contains("heads"))
        arrays[key] = at::tensor(value["values"].get<std::vector<double>>()).view({value["layers"].get<int64_t>(), value["heads"].get<int64_t>()});
    w.writeProbe(name, result["params"], arrays);
    w.commit();
  }
  if (a.has("json") || !result.contains("grid")) {
    std::cout << (a.has("json") ? result.dump() : result.dump(2)) << "\n";
    return 0;
  }
  const auto& g = result["grid"];
  std::cout << name << ": " << g["name"].get<std::string>() << " (layers x heads)\n";
  const int64_t L = g["layers"], H = g["heads"];
  for (int64_t l = 0; l < L; ++l) {
    std::cout << "  L" << l << ":";
    for (int64_t h = 0; h < H; ++h) {
      char buf[16];
      std::snprintf(buf, sizeof buf, " %6.3f", g["values"][l * H + h].get<double>());
      std::cout << buf;
    }
    std::cout << "\n";
  }
  return 0;
}

int cmdDemo(const Args& a) { return headlab::cli::runDemo(a.get("out", "demo-report")); }

// Every command once: its name, its --help lines and its function.
struct Command {
  const char* name;
  std::string usage;  // the options, continuation lines indented under them
  int (*run)(const Args&);
};

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"info", "--model M                                   model config as JSON", cmdInfo},
      {"tokenize", "--model M | --tokenizer T  (--text S | --text-file F) [--no-bos]", cmdTokenize},
      {"generate", "--model M [--tokenizer T] (--prompt S | --ids 0,5,7) [--max-tokens N] [--steps N] [--greedy]\n"
                   "[--temperature X] [--top-p P] [--seed N] [--device cpu|cuda] [--dtype float32|bfloat16|float16]",
       cmdGenerate},
      {"capture", "--model M (--prompt S | --ids 0,5,7) --hooks GLOB[,GLOB] --out trace.h5 [--force] [--gzip 0-9] [--fp16] [--max-mb N] [--image F]",
       cmdCapture},
      {"probe P", "--model M [--params JSON] [--prompts-file F] [--json] [--out results.h5] [--force]\n"
                  "P: sinks, hidden-sinks, massive, streaming, retrieval, induction   (--list shows parameters)\n"
                  "vision probes on a LLaVA folder or demo-vlm: probe vhd|var|look --model M --image F [--prompt S]",
       cmdProbe},
      {"patch", "--model M --clean S --corrupted S --answer S --wrong S --sweep " + headlab::sweepKindList("|") + "\n"
                "(--clean-ids / --corrupted-ids 0,5,7 and --answer/--wrong #id: no tokenizer needed)\n"
                "[--method exact|attribution|both] [--noising] [--json] [--out F.h5] [--force]\n"
                "path patching: --sweep path --receiver LAYER.HEAD --input q|k|v\n"
                "images (LLaVA folder or demo-vlm): --image F [--corrupted-image F]; --corrupted defaults to --clean\n"
                "prompt pairs: --pairs F.jsonl (lines {\"clean\", \"corrupted\", \"answer\", \"wrong\"}) instead of --clean ...: mean, std, each pair",
       cmdPatch},
      {"demo", "[--out DIR]           trains/loads the demo model, runs every probe, writes report.html", cmdDemo},
  };
  return table;
}

std::string usage() {
  std::string out = kUsageHead;
  for (const auto& c : commands()) {
    std::string name = c.name;
    std::string lines = c.usage;
    for (size_t nl; (nl = lines.find('\n')) != std::string::npos;) {
      out += "  " + name + std::string(10 - std::min<size_t>(10, name.size()), ' ') + lines.substr(0, nl) + "\n";
      name.clear(), lines = lines.substr(nl + 1);
    }
    out += "  " + name + std::string(10 - std::min<size_t>(10, name.size()), ' ') + lines + "\n";
  }
  return out + kUsageTail;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << usage();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "headlab-cli " << headlab::appVersion() << "\n";
    return 0;
  }
  const std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    const std::set<std::string> flags = {"greedy", "no-bos", "json", "force", "help", "fp16", "noising", "list"};
    const std::set<std::string> options = {"model", "tokenizer", "text", "text-file", "prompt", "max-tokens", "steps",
                                           "temperature", "top-p", "seed", "device", "ids", "dtype", "threads", "out",
                                           "hooks", "gzip", "max-mb", "max-model-mb", "receiver", "input", "params", "pairs", "clean-ids", "corrupted-ids", "prompts-file", "image", "corrupted-image", "clean", "corrupted", "answer", "wrong", "sweep", "method"};
    Args a(rest, flags, options);
    headlab::configureThreads(static_cast<int>(a.integer("threads", 0)));
    for (const auto& c : commands())
      if (cmd == std::string(c.name).substr(0, std::string(c.name).find(' '))) return c.run(a);
    std::cerr << "error: unknown command '" << cmd << "' (see headlab-cli --help)\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg = msg.substr(0, nl);
    std::cerr << "error: " << msg << "\n";
    return 1;
  }
}
