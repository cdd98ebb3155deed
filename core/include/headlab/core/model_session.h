// The one resolver of "a model the user named": a text model (Hugging Face folder, GGUF file,
// llama2.c checkpoint, cached Hugging Face name), a LLaVA folder, `demo` or `demo-vlm` (trained on
// first use, then cached). The CLI and the window both open models through it, and it holds what
// a prompt needs: the tokenizer, the image and prepare(ids).
// Implemented in core/session (target headlab_session, which links the demo trainers), so that
// headlab_core's loader does not depend on them.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "headlab/core/model_loader.h"
#include "headlab/core/vision_language.h"

namespace headlab {

struct SessionOptions {
  LoadOptions load;               // device, dtype, tokenizer override, size limit, progress
  bool tokenizerRequired = true;  // refuse a model without a tokenizer (TokenizerError)
};

struct ModelSession {
  LoadedModel loaded;                        // the text model, or the VLM's tokenizer, source and format "llava"
  std::unique_ptr<VisionLanguageModel> vlm;  // set for LLaVA folders and demo-vlm
  at::Tensor pixels;                         // the prompt's image, preprocessed (undefined: none)

  HookedTransformer& model() { return vlm ? vlm->language() : *loaded.model; }
  const Tokenizer* tokenizer() const { return loaded.tokenizer.get(); }
  // The prompt's ids; with an image, the placeholder goes after BOS unless the prompt has one.
  // Returns the decoder's input: embeddings with the image spliced in (undefined for text models).
  VlmInput prepare(std::vector<int64_t>& ids) { return prepare(ids, pixels); }
  // The same with another image (the corrupted run of patching).
  VlmInput prepare(std::vector<int64_t>& ids, const at::Tensor& image);
};

// Throws InputError for an empty spec, IoError / ConfigError / WeightError for files it cannot
// read, TokenizerError when a tokenizer is required and none is found, CancelledError when the
// progress callback cancels the demo training.
ModelSession openModelSession(const std::string& spec, const SessionOptions& options = {});

// The names openModelSession resolves besides paths: "demo", "demo-vlm".
bool isDemoModelName(const std::string& spec);

}  // namespace headlab
