// LLaVA-style vision-language models (issue #10): a CLIP ViT vision tower, the LLaVA-1.5 MLP
// projector, and a decoder whose input has the image's patch features spliced in at the image
// placeholder. The tower is a non-causal HookedTransformer, so every head of it is hookable
// (TransformerLens names, shown with a "vision." prefix); the decoder is the usual one.
// Images arrive as pixels: reading image files is the app's job (Qt), preprocessing is here.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "headlab/core/hooked_transformer.h"

namespace headlab {

class Tokenizer;

struct VisionTowerConfig {
  int64_t image_size = 336, patch_size = 14, channels = 3;
  int64_t feature_layers = 0;  // encoder layers run to reach vision_feature_layer (-2 -> all but the last)
  bool drop_class_token = true;  // vision_feature_select_strategy "default" (vs "full")
  int64_t image_token_id = -1;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};  // CLIP's normalisation
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  int64_t patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  int64_t imageTokens() const { return patches() + (drop_class_token ? 0 : 1); }  // positions one image takes
};

// The decoder's input for one prompt with (or without) an image.
struct VlmInput {
  at::Tensor embeds;        // [1, pos, d_model]: resid_pre of the decoder's layer 0
  std::vector<int64_t> ids;  // the token ids by position (image positions hold the image token id)
  int64_t imageBegin = -1, imageEnd = -1;  // the image-token span, [begin, end); -1 without image
};

class VisionLanguageModel {
 public:
  struct Projector {
    at::Tensor w1, b1, w2, b2;  // linear_1 [d_model, d_vision], linear_2 [d_model, d_model]
  };
  struct Embeddings {
    at::Tensor patch;        // [d_vision, channels * patch * patch] (the conv kernel, flattened)
    at::Tensor class_token;  // [d_vision]
    at::Tensor positions;    // [patches + 1, d_vision]
    at::Tensor pre_ln_w, pre_ln_b;
  };
  VisionLanguageModel(VisionTowerConfig config, Embeddings embeddings, std::unique_ptr<HookedTransformer> vision,
                      Projector projector, std::unique_ptr<HookedTransformer> language);

  const VisionTowerConfig& visionConfig() const { return m_config; }
  HookedTransformer& vision() { return *m_vision; }
  HookedTransformer& language() { return *m_language; }
  const HookedTransformer& vision() const { return *m_vision; }
  const HookedTransformer& language() const { return *m_language; }
  const Embeddings& embeddings() const { return m_embeddings; }
  const Projector& projector() const { return m_projector; }

  // pixels [batch, channels, size, size], already normalised -> the tower's hidden state at the
  // feature layer, [batch, patches(+1), d_vision].
  at::Tensor visionFeatures(const at::Tensor& pixels);
  // The projected image tokens, [batch, patches, d_model].
  at::Tensor imageTokens(const at::Tensor& pixels);
  // Embeds `ids` and replaces the image placeholder with the image tokens: one placeholder is
  // expanded to `patches` positions (LLaVA-1.5), or exactly `patches` placeholders are replaced
  // in place (newer processors). Without pixels the placeholders are dropped: the text-only run
  // of VHD's counterfactual. Throws InputError when the count of placeholders fits neither.
  VlmInput prepare(const std::vector<int64_t>& ids, const at::Tensor& pixels);
  at::Tensor forward(const VlmInput& in);  // logits [1, pos, d_vocab]
  // Moves the model: the decoder to `device` in `dtype`, the vision tower and projector to `device`
  // in float32 (small next to the decoder; CLIP's LayerNorms and pixels stay in full precision).
  void to(at::Device device, at::ScalarType dtype);

 private:
  VisionTowerConfig m_config;
  Embeddings m_embeddings;
  std::unique_ptr<HookedTransformer> m_vision;
  Projector m_projector;
  std::unique_ptr<HookedTransformer> m_language;
};

// The name of the i-th position of an image span: "img r,c" by patch (row-major), "img cls" for a
// kept class token. Labels for token strips, heatmaps and result tables.
std::string imagePositionLabel(const VisionTowerConfig& c, int64_t indexInSpan);
// A label per position of `ids`: the tokenizer's piece, or imagePositionLabel inside the image span
// [imageBegin, imageEnd) (none when `c` is null or the span is empty).
std::vector<std::string> positionLabels(const Tokenizer& tok, const std::vector<int64_t>& ids, const VisionTowerConfig* c,
                                        int64_t imageBegin, int64_t imageEnd);

// `ids` with the image placeholder inserted after BOS (or first, without BOS) when it holds none:
// a plain text prompt becomes "<bos> <image> text", the LLaVA-1.5 convention.
std::vector<int64_t> withImagePlaceholder(std::vector<int64_t> ids, int64_t imageTokenId, int64_t bosId);

// True when folder/config.json says model_type "llava".
bool isLlavaFolder(const std::string& folder);
// Loads a Hugging Face LlavaForConditionalGeneration folder (config.json + safetensors), in the
// layout of transformers < 4.52 (vision_tower., multi_modal_projector., language_model.model.) or
// later (model.vision_tower., model.multi_modal_projector., model.language_model., lm_head.).
std::unique_ptr<VisionLanguageModel> loadLlava(const std::string& folder);

// CLIP preprocessing on an RGB image (row-major, 3 bytes per pixel): resize the shorter side to
// `size` (bicubic), centre-crop size x size, scale to [0, 1] and normalise with mean / std.
// Returns [1, 3, size, size] float32. Throws InputError on an empty image or a wrong buffer size.
at::Tensor clipPreprocess(const std::vector<uint8_t>& rgb, int64_t width, int64_t height, const VisionTowerConfig& c);

}  // namespace headlab
