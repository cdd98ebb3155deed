// Opens a model from what the user typed: a Hugging Face folder, a .gguf, a llama2.c .bin,
// or a cached Hugging Face name. Validates everything before returning; a failure throws
// (IoError, ConfigError, WeightError, TokenizerError) and leaves nothing half-loaded.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "headlab/core/progress.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/system_memory.h"
#include "headlab/core/tokenizer.h"

namespace headlab {

struct LoadOptions {
  std::string tokenizerPath;     // overrides the tokenizer found with the model
  std::string device = "cpu";    // "cpu" or "cuda[:n]"
  std::string dtype = "float32"; // "float32", "bfloat16", "float16"
  // Refuse a CPU load whose weights would take more than this; 0: the memory the system has available.
  uint64_t maxBytes = 0;
  // Long preparation (training the demo model on first use): fraction, stage; false cancels.
  Progress progress;
};

struct LoadedModel {
  std::unique_ptr<HookedTransformer> model;
  std::unique_ptr<Tokenizer> tokenizer;  // may be null when none was found
  std::string source;                    // resolved path
  std::string format;                    // "hf", "gguf", "llama2c"
  std::map<std::string, int64_t> storedTypes;  // element type as stored ("F32", "Q4_K", ...) -> tensor count
};

LoadedModel loadModel(const std::string& spec, const LoadOptions& options = {});
// Resolves a bare name ("gpt2") from the Hugging Face cache; returns spec unchanged otherwise.
std::string resolveModelPath(const std::string& spec);
at::ScalarType parseDtype(const std::string& s);  // throws InputError
at::Device parseDevice(const std::string& s);     // throws InputError (also when CUDA is absent)

}  // namespace headlab
