// libFuzzer entry points, one per parser (selected by HEADLAB_FUZZ_TARGET_*). Each input is written
// to a private file and handed to the real loader: a HeadLab error is the expected answer to bad
// input; anything else (a crash, a sanitizer report, a foreign exception) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/tokenizer.h"
#if defined(HEADLAB_FUZZ_TARGET_trace)
#include <ATen/ATen.h>
#include "headlab/core/trace.h"
#endif
#if defined(HEADLAB_FUZZ_TARGET_hf_config)
#include <filesystem>
#include "headlab/core/model_loader.h"
#include "headlab/core/vision_language.h"
#endif

namespace {
std::string scratch(const char* ext) {
  return "/dev/shm/headlab-fuzz-" + std::to_string(::getpid()) + ext;
}
void writeFile(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}
void exercise(headlab::Tokenizer& tok) {
  auto ids = tok.encode("Hello world, 123 caf\xC3\xA9!", true);
  tok.decode(ids);
  for (int64_t i = 0; i < std::min<int64_t>(tok.vocabSize(), 64); ++i) tok.tokenString(i);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The trace reader's child gives up on a file that makes libhdf5 loop after 1 s instead of 10.
  ::setenv("HEADLAB_TRACE_STRINGS_TIMEOUT_S", "1", 0);
  return 0;
}

#if defined(HEADLAB_FUZZ_TARGET_hf_config)
namespace {
// A scratch Hugging Face folder whose weights are a real shard (HEADLAB_FUZZ_WEIGHTS, set by
// run_fuzzers.sh to stories260K's model.safetensors), so that the fuzzed config.json is checked
// against real tensors: wrong shapes, absurd sizes, missing keys, unknown architectures.
std::string folderWithWeights() {
  static const std::string dir = [] {
    std::string d = "/dev/shm/headlab-fuzz-hf-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    if (const char* w = std::getenv("HEADLAB_FUZZ_WEIGHTS"))
      std::filesystem::copy_file(w, d + "/shard.safetensors", std::filesystem::copy_options::overwrite_existing);
    return d;
  }();
  return dir;
}
}  // namespace
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
#if defined(HEADLAB_FUZZ_TARGET_safetensors)
    const std::string p = scratch(".safetensors");
    writeFile(p, data, size);
    headlab::TensorStore store;
    headlab::readSafetensors(p, store);
    for (const auto& [name, t] : store.tensors())
      if (t.nbytes < (1u << 20)) store.get(name);
#elif defined(HEADLAB_FUZZ_TARGET_gguf)
    const std::string p = scratch(".gguf");
    writeFile(p, data, size);
    headlab::GgufFile g = headlab::readGguf(p);
    for (const auto& [name, t] : g.tensors.tensors())
      if (t.nbytes < (1u << 20)) g.tensors.get(name);
    if (g.metadata.contains("tokenizer.ggml.tokens")) {
      auto tok = headlab::tokenizerFromGguf(g.metadata, p);
      exercise(*tok);
    }
#elif defined(HEADLAB_FUZZ_TARGET_llama2c)
    const std::string p = scratch(".bin");
    writeFile(p, data, size);
    headlab::Llama2cFile f = headlab::readLlama2c(p);
    for (const auto& [name, t] : f.tensors.tensors())
      if (t.nbytes < (1u << 20)) f.tensors.get(name);
#elif defined(HEADLAB_FUZZ_TARGET_tokenizer_json)
    const std::string p = scratch(".json");
    writeFile(p, data, size);
    auto tok = headlab::loadHfTokenizerJson(p);
    exercise(*tok);
#elif defined(HEADLAB_FUZZ_TARGET_hf_config)
    // Input: config.json, then optionally a NUL byte and model.safetensors.index.json (the sharded
    // layout, its shard being the real weights); without an index the weights are model.safetensors.
    const std::string dir = folderWithWeights();
    const std::string all(reinterpret_cast<const char*>(data), size);
    const size_t cut = all.find('\0');
    std::filesystem::remove(dir + "/model.safetensors");
    std::filesystem::remove(dir + "/model.safetensors.index.json");
    writeFile(dir + "/config.json", data, cut == std::string::npos ? size : cut);
    if (cut == std::string::npos) {
      std::filesystem::create_hard_link(dir + "/shard.safetensors", dir + "/model.safetensors");
    } else {
      writeFile(dir + "/model.safetensors.index.json", data + cut + 1, size - cut - 1);
    }
    if (headlab::isLlavaFolder(dir)) headlab::loadLlava(dir);
    else headlab::loadModel(dir);
#elif defined(HEADLAB_FUZZ_TARGET_llama2c_tokenizer)
    const std::string p = scratch(".tok.bin");
    writeFile(p, data, size);
    auto tok = headlab::loadLlama2cTokenizer(p);
    exercise(*tok);
#elif defined(HEADLAB_FUZZ_TARGET_sentencepiece)
    const std::string p = scratch(".model");
    writeFile(p, data, size);
    auto tok = headlab::loadSentencePieceModel(p);
    exercise(*tok);
#elif defined(HEADLAB_FUZZ_TARGET_gpt2_vocab)
    // Input: encoder.json, a NUL byte, then vocab.bpe.
    const std::string all(reinterpret_cast<const char*>(data), size);
    const size_t cut = all.find('\0');
    const std::string enc = scratch(".encoder.json"), bpe = scratch(".vocab.bpe");
    writeFile(enc, data, cut == std::string::npos ? size : cut);
    writeFile(bpe, cut == std::string::npos ? data : data + cut + 1, cut == std::string::npos ? 0 : size - cut - 1);
    auto tok = headlab::loadGpt2Vocab(enc, bpe);
    exercise(*tok);
#elif defined(HEADLAB_FUZZ_TARGET_trace)
    // libhdf5 is not instrumented: this checks our reader's own checks (schema, axes, shapes,
    // token arrays) on files that libhdf5 still opens, and that its string reads, which run in a
    // child process, turn libhdf5's crashes into errors.
    const std::string p = scratch(".h5");
    writeFile(p, data, size);
    headlab::TraceReader r(p);
    r.schemaVersion();
    r.tokens();
    r.tokenStrings();
    for (const auto& hook : r.activations()) {
      r.axes(hook);
      at::Tensor t = r.activation(hook);
      if (t.dim() == 4 && t.size(0) > 0 && t.size(1) > 0) r.headPattern(hook, 0, 0);
    }
#else
#error "fuzz target without a body: add its #elif branch (each target must exercise its parser)"
#endif
  } catch (const headlab::Error&) {
    // The expected answer to bad input.
  }
  return 0;
}
