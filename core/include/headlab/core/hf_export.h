// Weights in memory under their Hugging Face names, ready for writeSafetensors: the inverse of the
// loaders, written from the same per-family name tables (core/src/archs), so a file written here
// loads back (in HeadLab or transformers) to the same tensors. The config.json is the caller's.
#pragma once
#include <ATen/Tensor.h>

#include <map>
#include <string>

#include "headlab/core/model_config.h"
#include "headlab/core/model_weights.h"
#include "headlab/core/vision_language.h"

namespace headlab {

// Throws ConfigError naming the model_type when its family has no writer.
std::map<std::string, at::Tensor> hfTensors(const ModelConfig& config, const ModelWeights& weights);
// LLaVA-1.5 in the original layout: vision_tower.vision_model., multi_modal_projector., language_model.
std::map<std::string, at::Tensor> llavaHfTensors(const VisionLanguageModel& model);

}  // namespace headlab
