// Per-architecture weight-name tables and config parsing (one file per architecture).
#pragma once
#include <nlohmann/json.hpp>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/model_config.h"
#include "headlab/core/model_weights.h"

namespace headlab::arch {

// LLaMA family (llama, mistral, qwen2): arch_llama.cpp
bool isLlamaFamily(const std::string& modelType);
ModelConfig llamaConfigFromHf(const nlohmann::json& cfg, const std::string& where);
ModelWeights llamaWeightsFromHf(const ModelConfig& c, const TensorStore& store);
ModelConfig llamaConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where);
ModelConfig llamaConfigFromLlama2c(const Llama2cHeader& h);
// GGUF tensor names; llama2.c tensors are given the same names by the reader.
ModelWeights llamaWeightsFromGguf(const ModelConfig& c, const TensorStore& store);

// GPT-2: arch_gpt2.cpp
ModelConfig gpt2ConfigFromHf(const nlohmann::json& cfg, const std::string& where);
ModelWeights gpt2WeightsFromHf(const ModelConfig& c, const TensorStore& store);

// Reads a required config key, throwing ConfigError "where: missing key 'k'".
template <typename T>
T require(const nlohmann::json& cfg, const char* key, const std::string& where) {
  if (!cfg.contains(key) || cfg[key].is_null()) throw ConfigError(where + ": missing key '" + key + "'");
  try {
    return cfg[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ConfigError(where + ": key '" + key + "' has the wrong type (" + cfg[key].type_name() + ")");
  }
}
template <typename T>
T optional(const nlohmann::json& cfg, const char* key, T fallback, const std::string& where) {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  return require<T>(cfg, key, where);
}

}  // namespace headlab::arch
