#include "headlab/core/model_loader.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "archs/architectures.h"
#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"

namespace headlab {

namespace fs = std::filesystem;

at::ScalarType parseDtype(const std::string& s) {
  if (s == "float32" || s == "f32" || s == "fp32") return at::kFloat;
  if (s == "bfloat16" || s == "bf16") return at::kBFloat16;
  if (s == "float16" || s == "f16" || s == "fp16") return at::kHalf;
  throw InputError("unknown dtype '" + s + "' (expected float32, bfloat16 or float16)");
}

at::Device parseDevice(const std::string& s) {
  if (s == "cpu") return at::Device(at::kCPU);
  if (s.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA()) throw InputError("device '" + s + "' requested but this libtorch has no CUDA");
    return at::Device(s);
  }
  throw InputError("unknown device '" + s + "' (expected cpu or cuda)");
}

std::string resolveModelPath(const std::string& spec) {
  if (fs::exists(spec)) return spec;
  const char* home = std::getenv("HOME");
  const char* hfHome = std::getenv("HF_HOME");
  fs::path hub = hfHome ? fs::path(hfHome) / "hub" : fs::path(home ? home : "/") / ".cache/huggingface/hub";
  std::string dirName = "models--";
  for (char c : spec) dirName += c == '/' ? std::string("--") : std::string(1, c);
  fs::path snaps = hub / dirName / "snapshots";
  if (fs::is_directory(snaps))
    for (const auto& e : fs::directory_iterator(snaps))
      if (fs::exists(e.path() / "config.json")) return e.path().string();
  throw IoError(spec + ": no such file or folder, and no Hugging Face cache entry " + (hub / dirName).string());
}

namespace {
std::string detectFormat(const std::string& path) {
  if (fs::is_directory(path)) return "hf";
  MappedFile f(path);
  if (f.size() >= 4 && std::string(reinterpret_cast<const char*>(f.data()), 4) == "GGUF") return "gguf";
  if (fs::path(path).extension() == ".gguf") return "gguf";
  if (fs::path(path).extension() == ".safetensors") return "safetensors";
  return "llama2c";
}

// Before any weight is read: the weights' size once loaded against the budget, and the store set to
// convert tensor by tensor.
void prepareStore(TensorStore& store, const LoadOptions& opt, const std::string& source) {
  const at::Device device = parseDevice(opt.device);
  const at::ScalarType dtype = parseDtype(opt.dtype);
  const uint64_t need = store.loadedBytes(dtype);
  const uint64_t budget = opt.maxBytes ? opt.maxBytes : availableMemory();
  if (device.type() == at::kCPU && budget > 0 && need > budget)
    throw InputError(source + ": its weights need about " + std::to_string(need >> 20) + " MB as " + opt.dtype + ", more than the " +
                     std::to_string(budget >> 20) + " MB " + (opt.maxBytes ? "allowed" : "available") +
                     "; load it with a smaller --dtype (bfloat16 halves float32) or raise --max-model-mb");
  store.setTarget(device, dtype);
}

std::map<std::string, int64_t> storedTypeCounts(const TensorStore& store) {
  std::map<std::string, int64_t> counts;
  for (const auto& [name, t] : store.tensors()) ++counts[toString(t.dtype)];
  return counts;
}

std::unique_ptr<Tokenizer> findLlama2cTokenizer(const std::string& modelPath, int64_t vocab) {
  fs::path dir = fs::path(modelPath).parent_path();
  if (dir.empty()) dir = ".";
  for (const char* name : {"tokenizer.bin"})
    if (fs::exists(dir / name)) return loadLlama2cTokenizer((dir / name).string(), vocab);
  // llama2.c names custom vocabularies tok<N>.bin.
  fs::path custom = dir / ("tok" + std::to_string(vocab) + ".bin");
  if (fs::exists(custom)) return loadLlama2cTokenizer(custom.string(), vocab);
  return nullptr;
}
}  // namespace

LoadedModel loadModel(const std::string& spec, const LoadOptions& opt) {
  if (spec.empty()) throw InputError("no model given (expected a folder, .gguf or .bin)");
  if (spec == "demo" || spec == "demo-vlm")
    throw InputError("'" + spec + "' names a demo model: open it with openModelSession (headlab_session), which trains it on first use");
  LoadedModel out;
  out.source = resolveModelPath(spec);
  out.format = detectFormat(out.source);
  ModelConfig config;
  ModelWeights weights;
  if (out.format == "hf") {
    const std::string cfgPath = (fs::path(out.source) / "config.json").string();
    if (!fs::exists(cfgPath)) throw IoError(out.source + ": folder has no config.json");
    nlohmann::json cfg = readJsonFile(cfgPath);
    if (!cfg.is_object()) throw ConfigError(cfgPath + ": expected a JSON object");
    std::string type = arch::require<std::string>(cfg, "model_type", cfgPath);
    TensorStore store;
    readSafetensorsFolder(out.source, store);
    if (type == "llava")
      throw ConfigError(cfgPath + ": a LLaVA vision-language model: it opens with loadLlava (the window and headlab-cli "
                        "info, tokenize, generate, capture and probe take it); this command runs on text models only");
    const arch::ArchSpec* spec = arch::findHfArch(type);
    if (!spec) throw ConfigError(cfgPath + ": model_type '" + type + "' unsupported (expected " + arch::hfModelTypeList("", "llava") + ")");
    config = spec->configFromHf(cfg, cfgPath);
    prepareStore(store, opt, out.source);
    weights = spec->weightsFromHf(config, store);
    out.storedTypes = storedTypeCounts(store);
    try {
      out.tokenizer = loadTokenizer(out.source);
    } catch (const IoError&) {
      out.tokenizer = nullptr;  // weights without a tokenizer are still inspectable by ids
    }
  } else if (out.format == "gguf") {
    GgufFile g = readGguf(out.source);
    const std::string a = arch::require<std::string>(g.metadata, "general.architecture", out.source);
    const arch::ArchSpec* spec = arch::findGgufArch(a);
    if (!spec) throw ConfigError(out.source + ": GGUF architecture '" + a + "' unsupported (expected " + arch::ggufArchList() + ")");
    config = spec->configFromGguf(g.metadata, g.tensors, out.source);
    prepareStore(g.tensors, opt, out.source);
    weights = spec->weightsFromGguf(config, g.tensors);
    out.storedTypes = storedTypeCounts(g.tensors);
    if (g.metadata.contains("tokenizer.ggml.tokens")) out.tokenizer = tokenizerFromGguf(g.metadata, out.source);
  } else if (out.format == "llama2c") {
    Llama2cFile f = readLlama2c(out.source);
    config = arch::llamaConfigFromLlama2c(f.header);
    prepareStore(f.tensors, opt, out.source);
    weights = arch::llamaWeightsFromGguf(config, f.tensors);
    out.storedTypes = storedTypeCounts(f.tensors);
    out.tokenizer = findLlama2cTokenizer(out.source, config.d_vocab);
  } else {
    throw IoError(out.source + ": a bare .safetensors file has no config; open its folder instead");
  }
  if (!opt.tokenizerPath.empty()) out.tokenizer = loadTokenizer(opt.tokenizerPath);
  if (out.tokenizer && out.tokenizer->vocabSize() > config.d_vocab)
    throw TokenizerError(out.source + ": tokenizer has " + std::to_string(out.tokenizer->vocabSize()) +
                         " tokens but the model's vocabulary is " + std::to_string(config.d_vocab));
  // Tensors were converted as they were read; this places the few the readers computed (tensors
  // already in place are not copied).
  at::Device device = parseDevice(opt.device);
  at::ScalarType dtype = parseDtype(opt.dtype);
  if (device.type() != at::kCPU || dtype != at::kFloat) weights = weightsTo(weights, device, dtype);
  out.model = std::make_unique<HookedTransformer>(std::move(config), std::move(weights));
  return out;
}

}  // namespace headlab
