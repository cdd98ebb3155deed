// headlab-cli: the scriptable front end. Results on stdout, logs and progress on stderr,
// exit 0 on success, non-zero with one "error: ..." line on failure (PRODUCT.md §6).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_args.h"
#include "cli_common.h"
#include "demo_command.h"
#include "headlab/core/errors.h"
#include "headlab/core/faithfulness.h"
#include "headlab/core/generate.h"
#include "headlab/core/interventions.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/patching.h"
#include "headlab/core/startup.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/trace.h"
#include "headlab/core/model_session.h"
#include "headlab/core/activation_cache.h"
#include "headlab/core/provenance.h"
#include "headlab/core/tensor_export.h"
#include "headlab/core/vision_language.h"
#include "headlab/plugins/probe_plugin.h"

namespace {

using namespace headlab::cli;

// The text before and after the command table in --help.
const char* kUsageHead = "usage: headlab-cli <command> [options]\n\ncommands:\n";
const char* kUsageTail = R"(
  M: a Hugging Face folder, a .gguf, a llama2.c .bin, or a cached Hugging Face name.
  SPEC (--edit): KIND:HEADS[:option=value...], several joined by ';'. KIND zero, uniform, scale, act or pasta;
    HEADS L.H, L.*, A-B.H or A-B.*, comma-separated; options alpha= (beta= for act), threshold= (act's
    on-the-fly sinks), keys=3+5-9 (pasta's emphasised keys; act's sinks instead of finding them).
    e.g. --edit 'act:2-4.*:beta=0.4'   --edit 'pasta:3.*:keys=5-9:alpha=0.01;zero:1.0'
options: --version, --help, --threads N, --max-model-mb N (refuse a load whose weights need more; default: the memory available)
)";

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
  throw UsageError("missing --text or --text-file");
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
  auto o = openAny(a, !a.has("ids") && !a.has("ids-file"));
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
    const auto edits = installEdits(a, o.model());
    auto answer = headlab::generateFromEmbeddings(o.model(), in.embeds, g, -1, m.tokenizer ? m.tokenizer->eos() : -1);
    if (!m.tokenizer) return printIds(answer), 0;
    std::cout << a.get("prompt", m.tokenizer->decode(ids)) << " " << m.tokenizer->decode(answer) << "\n";
    return 0;
  }
  const auto& c = m.model->config();
  const auto edits = installEdits(a, *m.model);
  auto out = headlab::generate(*m.model, ids, g, m.tokenizer ? m.tokenizer->bos() : c.bos_token_id, m.tokenizer ? m.tokenizer->eos() : c.eos_token_id);
  if (!m.tokenizer) {  // a model without a tokenizer: the prompt's and the new ids
    ids.insert(ids.end(), out.begin(), out.end());
    return printIds(ids), 0;
  }
  std::cout << headlab::renderGeneration(*m.tokenizer, ids, out) << "\n";
  return 0;
}

// capture --format safetensors|npz: the activations under their TransformerLens names, in memory and
// then in one file, with the prompt, the edits and the provenance as metadata (and the sidecar).
int writeTensorCapture(const Args& a, OpenedModel& o, const std::vector<int64_t>& ids, const std::vector<std::string>& hooks) {
  if (o.vlm) throw headlab::InputError("--format " + outputFormat(a) + " with a vision-language model is not implemented; use --format hdf5");
  if (a.has("gzip") || a.has("fp16")) throw UsageError("--gzip and --fp16 apply to --format hdf5 only");
  headlab::HookedTransformer& model = o.model();
  const auto edits = installEdits(a, model);
  const auto acts = headlab::captureActivations(model, ids, {hooks, {}, {}});
  std::vector<std::string> pieces;
  for (auto id : ids) pieces.push_back(o.loaded.tokenizer ? o.loaded.tokenizer->tokenString(id) : "#" + std::to_string(id));
  const auto ascii = [](const nlohmann::json& j) { return j.dump(-1, ' ', true); };
  writeArrayFile(a, model.config(), o.loaded.source, o.loaded.format, "headlab.capture", acts,
                 {{"tokens", ascii(ids)}, {"token_strings", ascii(pieces)}, {"interventions", ascii(edits.described)}});
  std::cout << a.require("out") << "\n";
  return 0;
}

// "A:B" (either end optional) -> [A, B); an end of -1: the prompt's end.
std::pair<int64_t, int64_t> parseRange(const Args& a, const std::string& key) {
  if (!a.has(key)) return {0, -1};
  const std::string v = a.get(key);
  const size_t colon = v.find(':');
  const auto number = [&](const std::string& t, int64_t fallback) -> int64_t {
    if (t.empty()) return fallback;
    size_t used = 0;
    long long n = -1;
    try {
      n = std::stoll(t, &used);
    } catch (const std::exception&) {
    }
    if (used != t.size() || n < 0) throw UsageError("--" + key + " expects A:B (positions, e.g. 30000:30064), got '" + v + "'");
    return n;
  };
  if (colon == std::string::npos) {  // one position
    const int64_t p = number(v, 0);
    return {p, p + 1};
  }
  return {number(v.substr(0, colon), 0), number(v.substr(colon + 1), -1)};
}

// capture --heads/--rows/--cols: tiles of pattern and score hooks through the on-demand path, streamed.
int writeTiledCapture(const Args& a, OpenedModel& o, const std::vector<int64_t>& ids, const std::vector<std::string>& hooks,
                      const headlab::VlmInput& image) {
  headlab::HookedTransformer& model = o.model();
  const auto& c = model.config();
  if (outputFormat(a) != "hdf5") throw headlab::InputError("--heads/--rows/--cols write HDF5 only (streamed); drop --format " + outputFormat(a));
  headlab::AttentionSelection sel;
  if (a.has("heads")) sel.heads = parseIds(a.get("heads"), "--heads");
  std::tie(sel.rowBegin, sel.rowEnd) = parseRange(a, "rows");
  std::tie(sel.colBegin, sel.colEnd) = parseRange(a, "cols");
  const auto resolved = headlab::resolveSelection(sel, static_cast<int64_t>(ids.size()), c.n_heads);
  if (a.has("edit"))
    for (const auto& iv : headlab::parseInterventions(a.get("edit"), c.n_layers, c.n_heads)) {
      const bool editsPattern = iv.kind == headlab::InterventionKind::Uniform || iv.kind == headlab::InterventionKind::ActRedistribute ||
                                iv.kind == headlab::InterventionKind::Pasta || iv.kind == headlab::InterventionKind::VarRedistribute;
      for (const auto& h : hooks)
        if (editsPattern && h.rfind("blocks." + std::to_string(iv.layer) + ".", 0) == 0)
          throw headlab::InputError(std::string("--edit ") + headlab::toString(iv.kind) + " on layer " + std::to_string(iv.layer) +
                                    " changes the pattern being captured; tiles do not apply it (not implemented): capture without --heads/--rows/--cols");
    }
  const double mb = headlab::estimateTiledCaptureBytes(hooks, resolved, c.n_heads) / 1e6;
  std::cerr << "capture: " << hooks.size() << " attention hook(s), heads " << nlohmann::json(resolved.heads).dump() << ", rows " << resolved.rowBegin
            << ":" << resolved.rowEnd << ", columns " << resolved.colBegin << ":" << resolved.colEnd << " of " << ids.size()
            << " tokens: about " << mb << " MB on disk, streamed (no [T, T] matrix is formed)\n";
  const double budget = static_cast<double>(a.integer("max-mb", 4096));
  if (mb > budget)
    throw headlab::InputError("capture would write about " + std::to_string(static_cast<long long>(mb)) + " MB, over the budget of " +
                              std::to_string(static_cast<long long>(budget)) + " MB; select fewer heads, rows or columns, or raise --max-mb");
  headlab::TraceOptions options = traceOptions(a);
  options.gzipLevel = static_cast<int>(a.integer("gzip", 0));
  options.float16 = a.has("fp16");
  headlab::TraceWriter writer(a.require("out"), options);
  writer.writeModel(c, o.loaded.source, o.loaded.format);
  std::vector<std::string> pieces;
  for (auto id : ids) pieces.push_back(o.loaded.tokenizer ? o.loaded.tokenizer->tokenString(id) : "#" + std::to_string(id));
  writer.writeInputs(ids, pieces);
  if (image.imageBegin >= 0) writer.writeImage(o.pixels, image.imageBegin, image.imageEnd);
  const auto edits = installEdits(a, model);
  writer.writeInterventions(edits.described);
  headlab::captureAttentionTiles(model, ids, hooks, sel, writer, [](double fraction, const std::string& done) {
    std::cerr << "\rcapture: " << done << "          " << (fraction >= 1 ? "\n" : "") << std::flush;
    return true;
  }, o.vlm ? image.embeds : at::Tensor());
  writer.noteAttention("blockwise");  // the layers before ran blockwise; the tiles come from the same running statistics
  writer.commit();
  std::cout << a.get("out") << "\n";
  return 0;
}

int cmdCapture(const Args& a) {
  // A vision-language model (LLaVA folder, demo-vlm) captures its decoder on the prompt with the
  // image (--image) spliced in; the trace also holds the image and its span.
  auto o = openAny(a, !a.has("ids") && !a.has("ids-file"));
  auto& m = o.loaded;
  headlab::HookedTransformer& model = o.model();
  auto ids = promptIds(a, m.tokenizer.get());
  std::vector<std::string> hooks;
  std::stringstream globs(a.require("hooks"));
  for (std::string g; std::getline(globs, g, ',');)
    for (auto& h : model.hooks().match(g)) hooks.push_back(h);
  headlab::VlmInput image = o.prepare(ids);
  if (a.has("heads") || a.has("rows") || a.has("cols")) return writeTiledCapture(a, o, ids, hooks, image);
  const double mb = headlab::estimateCaptureBytes(model, hooks, static_cast<int64_t>(ids.size())) / 1e6;
  std::cerr << "capture: " << hooks.size() << " hook points, " << ids.size() << " tokens, about " << mb
            << " MB in memory and at most as much on disk\n";
  const double budget = static_cast<double>(a.integer("max-mb", 4096));
  if (mb > budget)
    throw headlab::InputError("capture would need about " + std::to_string(static_cast<long long>(mb)) + " MB, over the budget of " +
                              std::to_string(static_cast<long long>(budget)) + " MB; capture fewer hooks, select attention tiles with --heads/--rows/--cols, or raise --max-mb");
  if (outputFormat(a) != "hdf5") return writeTensorCapture(a, o, ids, hooks);
  headlab::TraceOptions options = traceOptions(a);
  options.gzipLevel = static_cast<int>(a.integer("gzip", 0));
  options.float16 = a.has("fp16");
  headlab::TraceWriter writer(a.require("out"), options);
  writer.writeModel(model.config(), m.source, m.format);
  std::vector<std::string> pieces;
  for (auto id : ids) pieces.push_back(m.tokenizer ? m.tokenizer->tokenString(id) : "#" + std::to_string(id));
  writer.writeInputs(ids, pieces);
  if (image.imageBegin >= 0) writer.writeImage(o.pixels, image.imageBegin, image.imageEnd);
  const auto edits = installEdits(a, model);
  writer.writeInterventions(edits.described);
  headlab::captureToTrace(model, ids, hooks, writer, [](double fraction, const std::string& done) {
    std::cerr << "\rcapture: " << done << (fraction >= 1 ? "\n" : "") << std::flush;
    return true;
  }, o.vlm ? image.embeds : at::Tensor());
  writer.noteAttention(model.attentionUsed());
  writer.commit();
  std::cout << a.get("out") << "\n";
  return 0;
}

// The faithfulness checks (headlab/core/faithfulness.h) on the prompt: one line each, exit 1 if any fails.
int cmdCheck(const Args& a) {
  auto o = openAny(a, !a.has("ids") && !a.has("ids-file"));
  if (o.vlm) throw headlab::InputError("check runs on a text model's decoder; " + a.get("model") + " is a vision-language model");
  std::vector<int64_t> ids = a.has("ids") || a.has("ids-file") || a.has("prompt") || a.has("prompt-file") ? promptIds(a, o.loaded.tokenizer.get())
                                                            : o.loaded.tokenizer->encode("Once upon a time there was a little girl named Lily.", true);
  const auto checks = headlab::runFaithfulnessChecks(*o.loaded.model, ids);
  const nlohmann::json j = headlab::toJson(checks);
  if (a.has("json")) {
    std::cout << j.dump(2) << "\n";
  } else {
    for (const auto& c : checks) std::cout << (c.passed ? "ok    " : "FAIL  ") << c.name << ": " << c.detail << "\n";
    std::cout << (j["passed"].get<bool>() ? "all checks passed" : "some checks failed") << " on " << ids.size() << " tokens\n";
  }
  return j["passed"].get<bool>() ? 0 : 1;
}

int cmdDemo(const Args& a) { return headlab::cli::runDemo(a.get("out", "demo-report")); }

// The registered probes, text or vision ones, in registration order.
std::string probeNames(bool vision, const std::string& separator) {
  std::string out;
  auto& registry = headlab::plugins::ProbeRegistry::instance();
  for (const auto& name : registry.names())
    if (registry.create(name)->needsImage() == vision) out += (out.empty() ? "" : separator) + name;
  return out;
}

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
      {"generate", "--model M [--tokenizer T] (--prompt S | --ids 0,5,7) [--max-tokens N] [--steps N] [--greedy] [--edit SPEC]\n"
                   "[--temperature X] [--top-p P] [--seed N] [--device cpu|cuda] [--dtype float32|bfloat16|float16]",
       cmdGenerate},
      {"capture", "--model M (--prompt S | --ids 0,5,7 | --prompt-file F | --ids-file F) --hooks GLOB[,GLOB] --out trace.h5 [--force] [--gzip 0-9] [--fp16] [--max-mb N] [--image F] [--edit SPEC]\n"
                  "[--heads 3,5] [--rows A:B] [--cols C:D]   tiles of pattern / score hooks, computed blockwise and streamed: no [T, T] held\n"
                  "[--format hdf5|safetensors|npz]   the same tensors under TransformerLens names, with the prompt and provenance as metadata",
       cmdCapture},
      {"probe P", "--model M [--params JSON] [--prompts-file F] [--json] [--out results.h5] [--format hdf5|safetensors|npz] [--force] [--edit SPEC]\n"
                  "P: " + probeNames(false, ", ") + "   (--list shows parameters)\n"
                  "vision probes on a LLaVA folder or demo-vlm: probe " + probeNames(true, "|") + " --model M --image F [--prompt S]",
       cmdProbe},
      {"patch", "--model M --clean S --corrupted S --answer S --wrong S --sweep " + headlab::sweepKindList("|") + "\n"
                "(--clean-ids / --corrupted-ids 0,5,7 and --answer/--wrong #id: no tokenizer needed)\n"
                "[--method exact|attribution|both] [--noising] [--json] [--out F.h5] [--format hdf5|safetensors|npz] [--force]\n"
                "path patching: --sweep path --receiver LAYER.HEAD --input q|k|v\n"
                "images (LLaVA folder or demo-vlm): --image F [--corrupted-image F]; --corrupted defaults to --clean\n"
                "prompt pairs: --pairs F.jsonl (lines {\"clean\", \"corrupted\", \"answer\", \"wrong\"}) instead of --clean ...: mean, std, each pair\n"
                "[--out F.h5] [--shard i/N]   a share of the pairs (or Slurm's SLURM_ARRAY_TASK_ID/COUNT); join with merge",
       cmdPatch},
      {"lens", "--model M (--prompt S | --ids 0,5,7) [--pos P|all] [--top K] [--token S|#id] [--edit SPEC] [--json]\n"
               "what each layer predicts: the final norm and unembedding on every resid_post (logit lens)", cmdLens},
      {"dla", "--model M (--prompt S | --ids 0,5,7) --token S|#id [--wrong S|#id] [--pos P] [--edit SPEC] [--json]\n"
              "direct logit attribution: each head's and MLP's share of the logit (difference), final norm frozen", cmdDla},
      {"check", "--model M [--prompt S | --ids 0,5,7] [--json]   observed hooks, KV cache, determinism, bfloat16/float16 drift", cmdCheck},
      {"pairs ioi", "--model M [--n 24] [--seed 0] [--variant abba|baba|mixed] [--out F.jsonl]   IOI pairs (ABC corruption) for patch --pairs", cmdPairs},
      {"merge", "OUT.h5 IN.h5...   the shards of one run (patch --pairs --shard i/N or a Slurm array) as the unsharded file", cmdMerge},
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
  for (int i = 0; i < argc; ++i) commandLine() += std::string(i ? " " : "") + argv[i];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    const std::set<std::string> flags = {"greedy", "no-bos", "json", "force", "help", "fp16", "noising", "list"};
    const std::set<std::string> options = {"edit", "model", "tokenizer", "text", "text-file", "prompt", "max-tokens", "steps",
                                           "temperature", "top-p", "seed", "device", "ids", "dtype", "threads", "out",
                                           "hooks", "gzip", "max-mb", "max-model-mb", "receiver", "input", "params", "pairs", "clean-ids", "corrupted-ids", "prompts-file", "image", "corrupted-image", "clean", "corrupted", "answer", "wrong", "sweep", "method", "pos", "top", "token", "format",
                                           "ids-file", "prompt-file", "heads", "rows", "cols", "attention", "shard", "n", "variant"};
    Args a(rest, flags, options);
    headlab::configureThreads(static_cast<int>(a.integer("threads", 0)));
    for (const auto& c : commands())
      if (cmd == std::string(c.name).substr(0, std::string(c.name).find(' '))) return c.run(a);
    std::cerr << "error: unknown command '" << cmd << "' (see headlab-cli --help)\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg = msg.substr(0, nl);
    std::cerr << "error: " << msg << "\n";
    return 1;
  }
}
