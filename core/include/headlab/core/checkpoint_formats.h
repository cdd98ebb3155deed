// Readers for the checkpoint files researchers have. Each validates its header, dtypes and
// offsets against the file size before touching data, and throws IoError / WeightError naming
// the file, the tensor, what was expected and what it found.
#pragma once
#include <ATen/Tensor.h>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "headlab/core/tensor_store.h"

namespace headlab {

// safetensors: u64 header length, JSON header, data. Adds the file's tensors to `store`.
void readSafetensors(const std::string& path, TensorStore& store);
// config.json + model.safetensors or the sharded model.safetensors.index.json.
void readSafetensorsFolder(const std::string& folder, TensorStore& store);

// GGUF v3: metadata as JSON (arrays as JSON arrays) and tensors (dims reversed to PyTorch order).
struct GgufFile {
  nlohmann::json metadata;
  TensorStore tensors;
  uint32_t version = 0;
};
GgufFile readGguf(const std::string& path);

// llama2.c legacy and v1 checkpoints; tensors get GGUF llama names in PyTorch order.
struct Llama2cHeader {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;
  int version = 0;  // 0 = legacy
};
struct Llama2cFile {
  Llama2cHeader header;
  TensorStore tensors;
};
Llama2cFile readLlama2c(const std::string& path);

nlohmann::json readJsonFile(const std::string& path);  // throws IoError / ConfigError with position

}  // namespace headlab

namespace headlab {
// Writes float32 tensors as a safetensors file (header padded to 8 bytes). Throws IoError.
void writeSafetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors);
}  // namespace headlab
