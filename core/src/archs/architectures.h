// Per-architecture weight-name tables and config parsing (one file per architecture).
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/model_config.h"
#include "headlab/core/model_weights.h"
#include "headlab/core/vision_language.h"

namespace headlab::arch {

using TensorMap = std::map<std::string, at::Tensor>;

// One architecture family: the config.json model_type values and GGUF general.architecture values
// it reads, and its readers (null where the family has no such layout). The weight readers may
// adjust the config to what the file holds (a tied matrix stored under the output name).
struct ArchSpec {
  const char* family;
  std::vector<std::string> hfModelTypes;
  std::vector<std::string> ggufArchs;
  ModelConfig (*configFromHf)(const nlohmann::json& cfg, const std::string& where);
  ModelWeights (*weightsFromHf)(ModelConfig& c, const TensorStore& store);
  ModelConfig (*configFromGguf)(const nlohmann::json& meta, const TensorStore& store, const std::string& where);
  ModelWeights (*weightsFromGguf)(ModelConfig& c, const TensorStore& store);
  // The inverse of weightsFromHf, from the same name table (null where not written yet).
  TensorMap (*weightsToHf)(const ModelConfig& c, const ModelWeights& w);
};
// Every supported family, in one table (arch_registry.cpp, from the rows below).
const std::vector<ArchSpec>& architectures();
const ArchSpec* findHfArch(const std::string& modelType);  // nullptr when unsupported
const ArchSpec* findGgufArch(const std::string& ggufArch);
bool isLlamaFamily(const std::string& modelType);
// "gpt2, llama, mistral or qwen2" (one family's types when `family` is given), for messages.
std::string hfModelTypeList(const std::string& family = "", const std::string& alsoAccepted = "");
std::string ggufArchList();

// A config key that changes the maths: present with any value other than `harmless` (and not null),
// the load is refused with its name.
struct MathsKey {
  const char* key;
  nlohmann::json harmless;
  const char* why;
};
void refuseUnimplemented(const nlohmann::json& cfg, const std::vector<MathsKey>& keys, const std::string& where);

// The tensor names of a RMSNorm / RoPE / gated-MLP decoder (arch_decoder.cpp reads them): "{}" is
// the layer index, "" a tensor the family does not have.
struct DecoderNames {
  std::string embed, finalNorm, output;
  std::string ln1, ln2, attnPost, mlpPost;         // pre-norms; post-norms (ModelConfig::post_norms)
  std::string q, k, v, o, qBias, kBias, vBias, oBias;
  std::string qkv;                                 // fused rows q | k | v (Phi-3), instead of q, k, v
  std::string qNorm, kNorm;                        // ModelConfig::qk_norm
  std::string gate, up, down;
  std::string gateUp;                              // fused rows gate | up (Phi-3), instead of gate, up
  bool normPlusOne = false;                        // the file stores w of a 1 + w scale (Gemma in HF layout)
};
// One tensor of a layer in a family's file, read and written from the same row: its name after the
// layer's prefix, the LayerWeights field, and its size along [out, in] in units of the width ('D') or
// the MLP width ('F'); in = 0 for a vector.
struct LayerTensorName {
  const char* name;
  at::Tensor LayerWeights::*field;
  char out, in;
};
// Matrices are stored [out, in], or [in, out] when `transposed` (GPT-2's Conv1D).
void readLayerTensors(LayerWeights& L, const TensorStore& store, const std::string& prefix, const std::vector<LayerTensorName>& table,
                      int64_t D, int64_t F, bool transposed = false);
void writeLayerTensors(const LayerWeights& L, const std::string& prefix, const std::vector<LayerTensorName>& table, TensorMap& out,
                       bool transposed = false);

DecoderNames hfDecoderNames();  // LlamaForCausalLM's names, the base the other families edit
// llama.cpp's names (blk.{}.attn_q.weight, …), every optional tensor included: q/k norms, post-norms
// (post_attention_norm, post_ffw_norm); Gemma's scales are stored as 1 + w there (normPlusOne false).
DecoderNames ggufDecoderNames();
ModelWeights loadDecoder(ModelConfig& c, const TensorStore& store, const DecoderNames& names);
// The inverse of loadDecoder: fused rows concatenated, the output matrix only when untied. normOffset:
// the model's ModelConfig::norm_weight_offset (its weights hold scale - offset); norm tensors are
// written as the file stores them (w for a normPlusOne file).
TensorMap decoderTensors(const ModelWeights& w, const DecoderNames& names, double normOffset = 0);
// The keys every Llama-style config.json shares (sizes, RMSNorm eps, RoPE base and rope_scaling, tying, ids).
ModelConfig decoderConfigFromHf(const nlohmann::json& cfg, const std::string& where);
Activation activationFromHf(const std::string& name, const std::string& where);
// layer_types ("sliding_attention" / "full_attention" per layer) when the config lists them, else empty.
std::vector<bool> slidingLayersFromHf(const nlohmann::json& cfg, int64_t nLayers, const std::string& where);
std::string atLayer(const std::string& pattern, int64_t layer);
// The keys every llama.cpp decoder shares ({arch}.embedding_length, .attention.key_length,
// .rope.dimension_count, .rope.freq_base, linear rope scaling, .attention.sliding_window, …), with
// rotate-half RoPE (llama.cpp's NEOX type; LLaMA's own files use interleaved pairs, set by its reader).
// c.arch is general.architecture; the family readers set their model_type.
ModelConfig decoderConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where);
// Every GGUF family: the vocabulary size from token_embd.weight, tying (no output.weight), BOS/EOS ids.
void ggufVocabularyAndIds(const nlohmann::json& meta, const TensorStore& store, ModelConfig& c, const std::string& where);

// LLaMA family (llama, mistral, qwen2): arch_llama.cpp
ModelConfig llamaConfigFromHf(const nlohmann::json& cfg, const std::string& where);
ModelWeights llamaWeightsFromHf(ModelConfig& c, const TensorStore& store);
TensorMap llamaWeightsToHf(const ModelConfig& c, const ModelWeights& w);
ModelConfig llamaConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where);
ModelConfig llamaConfigFromLlama2c(const Llama2cHeader& h);
// GGUF tensor names; llama2.c tensors are given the same names by the reader.
ModelWeights llamaWeightsFromGguf(ModelConfig& c, const TensorStore& store);
// config.json's rope_scaling (null, default, linear, llama3, yarn, dynamic, longrope; others refused with
// their name) into c.rope_scaling, read after c.n_ctx (max_position_embeddings); dynamic widens n_ctx.
void readRopeScalingFromHf(const nlohmann::json& cfg, ModelConfig& c, const std::string& where);

// LLaVA's CLIP tower and projector: arch_clip.cpp (loadLlava in vision_language.cpp puts them together).
ModelConfig clipConfigFromHf(const nlohmann::json& visionConfig, VisionTowerConfig& v, const std::string& where);
ModelWeights clipWeightsFromHf(const TensorStore& store, const std::string& prefix, const ModelConfig& enc, const VisionTowerConfig& v,
                               VisionLanguageModel::Embeddings& embeddings);
void clipTensors(const ModelWeights& tower, const VisionLanguageModel::Embeddings& embeddings, const VisionTowerConfig& v,
                 const std::string& prefix, TensorMap& out);
// vision_feature_layer, vision_feature_select_strategy, the image token and the projector's activation.
void llavaFeatureConfig(const nlohmann::json& cfg, const ModelConfig& enc, VisionTowerConfig& v, const std::string& where);
VisionLanguageModel::Projector llavaProjectorFromHf(const TensorStore& store, const std::string& prefix, int64_t dModel, int64_t dVision);
void llavaProjectorTensors(const VisionLanguageModel::Projector& projector, const std::string& prefix, TensorMap& out);

// Each family's row of the table, written in its arch_<family>.cpp (its readers and writer are
// private to that file; LLaMA's are declared above for llama2.c and LLaVA).
ArchSpec gpt2Arch();
ArchSpec llamaArch();
ArchSpec qwen3Arch();
ArchSpec olmo2Arch();
ArchSpec gemmaArch();
ArchSpec phi3Arch();
ArchSpec neoxArch();

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

// The sizes of a multi-head-attention model without GQA, named in each format's own words:
// d_model, n_layers, n_heads (n_kv_heads = n_heads, d_head = d_model / n_heads) and d_mlp
// (`mlpFallback` > 0: optional, that value when absent).
struct SizeKeys {
  const char* dModel;
  const char* nLayers;
  const char* nHeads;
  const char* dMlp;
  int64_t mlpFallback = 0;
};
void readSizes(const nlohmann::json& cfg, const SizeKeys& keys, ModelConfig& c, const std::string& where);

}  // namespace headlab::arch
