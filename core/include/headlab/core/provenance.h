// Where a result came from, written into every file HeadLab writes (HDF5 root attribute "provenance"
// and a JSON sidecar, <file>.provenance.json): the app version and git commit, the command line, the
// model's path, format and the SHA-256 of each of its files (weights, config, tokenizer), its config,
// dtype, device, thread count, attention implementation, seed and the time.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace headlab {

struct ModelConfig;

// SHA-256 as lower-case hex (FIPS 180-4), of a file read in chunks, or of bytes.
std::string sha256File(const std::string& path);
std::string sha256Hex(const void* data, size_t size);

// The files a model spec reads: for a folder, its *.safetensors, config.json and tokenizer files; for a
// file (.gguf, llama2.c .bin), the file and a tokenizer beside it (tok*.bin, tokenizer.model/json).
// Sorted; absent files are left out. "demo" / "demo-vlm" resolve to their cached folders first.
std::vector<std::string> modelFiles(const std::string& source);

struct ProvenanceInputs {
  std::string commandLine;       // argv joined, or "headlab (window): File > Export"
  std::string modelSource, modelFormat;
  std::string dtype = "float32", device = "cpu";
  // The attention implementation: "explicit" (softmax(QK^T)V formed), "blockwise" (running softmax
  // over blocks), or "auto" (blockwise only in layers whose scores would pass 128 MB and that
  // nothing hooks); the numbers agree to float rounding.
  std::string attention = "auto";
  int64_t seed = -1;                   // -1: nothing random ran
  std::vector<std::string> extraFiles; // e.g. --tokenizer, --image
};
// The provenance record (JSON object), hashing every file of the model and the extra files.
nlohmann::json provenance(const ModelConfig& c, const ProvenanceInputs& in);

// Writes `record` as JSON next to `path` (path + ".provenance.json"), atomically (temporary file, then rename).
void writeProvenanceSidecar(const std::string& path, const nlohmann::json& record);

}  // namespace headlab
