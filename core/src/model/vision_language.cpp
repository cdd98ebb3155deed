#include "headlab/core/vision_language.h"

#include <algorithm>
#include <filesystem>

#include "archs/architectures.h"
#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/tensor_store.h"
#include "headlab/core/tokenizer.h"

namespace headlab {

namespace fs = std::filesystem;

VisionLanguageModel::VisionLanguageModel(VisionTowerConfig config, Embeddings embeddings, std::unique_ptr<HookedTransformer> vision,
                                         Projector projector, std::unique_ptr<HookedTransformer> language)
    : m_config(config),
      m_embeddings(std::move(embeddings)),
      m_vision(std::move(vision)),
      m_projector(std::move(projector)),
      m_language(std::move(language)) {}

at::Tensor VisionLanguageModel::visionFeatures(const at::Tensor& pixelsIn) {
  const auto& c = m_config;
  if (pixelsIn.dim() != 4 || pixelsIn.size(1) != c.channels || pixelsIn.size(2) != c.image_size || pixelsIn.size(3) != c.image_size)
    throw InputError("pixels must be [batch, " + std::to_string(c.channels) + ", " + std::to_string(c.image_size) + ", " +
                     std::to_string(c.image_size) + "], got " + shapeString(pixelsIn.sizes()));
  const int64_t B = pixelsIn.size(0), P = c.patch_size, G = c.image_size / P, Dv = m_embeddings.class_token.size(0);
  at::Tensor pixels = pixelsIn.to(m_embeddings.patch.device(), at::kFloat);
  // The stride-P convolution as a product: patches in row-major grid order, each flattened as
  // (channel, row, col) like the kernel. [B, C, G, P, G, P] -> [B, G, G, C, P, P].
  at::Tensor patches = pixels.view({B, c.channels, G, P, G, P}).permute({0, 2, 4, 1, 3, 5}).reshape({B, G * G, c.channels * P * P});
  at::Tensor x = at::matmul(patches, m_embeddings.patch.t());  // [B, N, Dv]
  x = at::cat({m_embeddings.class_token.view({1, 1, Dv}).expand({B, 1, Dv}), x}, 1) + m_embeddings.positions.unsqueeze(0);
  x = at::layer_norm(x, {Dv}, m_embeddings.pre_ln_w, m_embeddings.pre_ln_b, m_vision->config().norm_eps);
  for (int l = 0; l < c.feature_layers; ++l) x = m_vision->block(l, x);
  return c.drop_class_token ? x.slice(1, 1) : x;
}

at::Tensor VisionLanguageModel::imageTokens(const at::Tensor& pixels) {
  at::Tensor f = visionFeatures(pixels);
  at::Tensor h = at::gelu(at::linear(f, m_projector.w1, m_projector.b1));
  return at::linear(h, m_projector.w2, m_projector.b2).to(m_language->dtype());
}

std::vector<int64_t> withImagePlaceholder(std::vector<int64_t> ids, int64_t imageTokenId, int64_t bosId) {
  if (std::find(ids.begin(), ids.end(), imageTokenId) != ids.end()) return ids;
  const bool bos = !ids.empty() && bosId >= 0 && ids[0] == bosId;
  ids.insert(ids.begin() + (bos ? 1 : 0), imageTokenId);
  return ids;
}

VlmInput VisionLanguageModel::prepare(const std::vector<int64_t>& ids, const at::Tensor& pixels) {
  if (ids.empty()) throw InputError("empty prompt: no tokens to run");
  const int64_t image = m_config.image_token_id, N = m_config.imageTokens();
  std::vector<int64_t> where;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] == image) where.push_back(static_cast<int64_t>(i));
  VlmInput in;
  std::vector<int64_t> text;  // the ids with every placeholder removed
  for (int64_t id : ids)
    if (id != image) text.push_back(id);
  if (!text.empty()) m_language->checkTokens(at::tensor(text, at::kLong).unsqueeze(0));
  else if (!pixels.defined()) throw InputError("empty prompt: no tokens to run");
  if (!pixels.defined()) {
    in.ids = text;
    in.embeds = m_language->embed(at::tensor(text, at::kLong).unsqueeze(0));
    return in;
  }
  if (where.size() != 1 && static_cast<int64_t>(where.size()) != N)
    throw InputError("the prompt has " + std::to_string(where.size()) + " image tokens (id " + std::to_string(image) +
                     "); expected 1 (expanded to " + std::to_string(N) + " patches) or " + std::to_string(N));
  if (where.size() == static_cast<size_t>(N) && where.back() - where.front() + 1 != N)
    throw InputError("the prompt's " + std::to_string(N) + " image tokens are not contiguous");
  const int64_t begin = where.front();
  at::Tensor img = imageTokens(pixels);  // [1, N, D]
  std::vector<int64_t> before(text.begin(), text.begin() + begin), after(text.begin() + begin, text.end());
  std::vector<at::Tensor> parts;
  auto embedIds = [&](const std::vector<int64_t>& v) { return m_language->embed(at::tensor(v, at::kLong).unsqueeze(0)); };
  if (!before.empty()) parts.push_back(embedIds(before));
  parts.push_back(img);
  if (!after.empty()) parts.push_back(embedIds(after));
  in.embeds = at::cat(parts, 1);
  in.imageBegin = begin;
  in.imageEnd = begin + N;
  in.ids = before;
  in.ids.insert(in.ids.end(), static_cast<size_t>(N), image);
  in.ids.insert(in.ids.end(), after.begin(), after.end());
  const int64_t T = static_cast<int64_t>(in.ids.size());
  if (T > m_language->config().n_ctx)
    throw InputError("prompt of " + std::to_string(T) + " positions with the image is longer than the model's context of " +
                     std::to_string(m_language->config().n_ctx));
  return in;
}

at::Tensor VisionLanguageModel::forward(const VlmInput& in) { return m_language->forwardFrom(0, in.embeds); }

void VisionLanguageModel::to(at::Device device, at::ScalarType dtype) {
  m_language->to(device, dtype);
  m_vision->to(device, at::kFloat);
  auto move = [&](at::Tensor& t) {
    if (t.defined()) t = t.to(device, at::kFloat);
  };
  for (at::Tensor* t : {&m_embeddings.patch, &m_embeddings.class_token, &m_embeddings.positions, &m_embeddings.pre_ln_w,
                        &m_embeddings.pre_ln_b, &m_projector.w1, &m_projector.b1, &m_projector.w2, &m_projector.b2})
    move(*t);
}

std::string imagePositionLabel(const VisionTowerConfig& c, int64_t i) {
  if (!c.drop_class_token) {
    if (i == 0) return "img cls";
    --i;
  }
  const int64_t side = c.image_size / c.patch_size;
  return "img " + std::to_string(i / side) + "," + std::to_string(i % side);
}

std::vector<std::string> positionLabels(const Tokenizer& tok, const std::vector<int64_t>& ids, const VisionTowerConfig* c,
                                        int64_t imageBegin, int64_t imageEnd) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto pos = static_cast<int64_t>(i);
    out.push_back(c && pos >= imageBegin && pos < imageEnd ? imagePositionLabel(*c, pos - imageBegin) : tok.tokenString(ids[i]));
  }
  return out;
}

bool isLlavaFolder(const std::string& folder) {
  const fs::path cfg = fs::path(folder) / "config.json";
  if (!fs::is_regular_file(cfg)) return false;
  try {
    auto j = readJsonFile(cfg.string());
    return j.is_object() && j.contains("model_type") && j["model_type"] == "llava";  // no throw on a non-string
  } catch (const Error&) {
    return false;
  }
}

namespace {
// The tensors under `from` renamed to start with `to` instead; data stays in the source store's
// mapped files, which must outlive the view.
TensorStore renamedView(const TensorStore& store, const std::vector<std::pair<std::string, std::string>>& prefixes) {
  TensorStore view;
  for (const auto& [name, raw] : store.tensors())
    for (const auto& [from, to] : prefixes)
      if (name.rfind(from, 0) == 0) {
        RawTensor r = raw;
        r.name = to + name.substr(from.size());
        view.add(r);
        break;
      }
  return view;
}
}  // namespace

std::unique_ptr<VisionLanguageModel> loadLlava(const std::string& folder) {
  const std::string cfgPath = (fs::path(folder) / "config.json").string();
  const nlohmann::json cfg = readJsonFile(cfgPath);
  if (!cfg.is_object() || !cfg.contains("model_type") || cfg["model_type"] != "llava") throw ConfigError(cfgPath + ": model_type is not 'llava'");
  if (!cfg.contains("text_config") || !cfg["text_config"].is_object()) throw ConfigError(cfgPath + ": missing key 'text_config'");
  if (!cfg.contains("vision_config") || !cfg["vision_config"].is_object()) throw ConfigError(cfgPath + ": missing key 'vision_config'");
  TensorStore store;
  readSafetensorsFolder(folder, store);
  // transformers >= 4.52 nests the tower, the projector and the decoder under "model.".
  const bool newLayout = store.has("model.vision_tower.vision_model.embeddings.class_embedding");
  VisionTowerConfig v;
  ModelConfig enc = arch::clipConfigFromHf(cfg["vision_config"], v, cfgPath + " vision_config");
  arch::llavaFeatureConfig(cfg, enc, v, cfgPath);
  VisionLanguageModel::Embeddings e;
  ModelWeights vw = arch::clipWeightsFromHf(store, newLayout ? "model.vision_tower.vision_model." : "vision_tower.vision_model.", enc, v, e);

  // The decoder: a LLaMA-family model under its own prefix.
  const auto& tc = cfg["text_config"];
  const std::string twhere = cfgPath + " text_config";
  const std::string ttype = arch::optional<std::string>(tc, "model_type", "llama", twhere);
  if (!arch::isLlamaFamily(ttype))
    throw ConfigError(twhere + ": model_type '" + ttype + "' unsupported (expected " + arch::hfModelTypeList("llama") + ")");
  nlohmann::json tcfg = tc;
  tcfg["model_type"] = ttype;
  ModelConfig text = arch::llamaConfigFromHf(tcfg, twhere);
  TensorStore textStore = newLayout ? renamedView(store, {{"model.language_model.", "model."}, {"lm_head.", "lm_head."}})
                                    : renamedView(store, {{"language_model.", ""}});
  ModelWeights tw = arch::llamaWeightsFromHf(text, textStore);
  if (v.image_token_id < 0 || v.image_token_id >= text.d_vocab)
    throw ConfigError(cfgPath + ": image_token_index " + std::to_string(v.image_token_id) + " outside the vocabulary of " +
                      std::to_string(text.d_vocab));
  VisionLanguageModel::Projector pr =
      arch::llavaProjectorFromHf(store, newLayout ? "model.multi_modal_projector." : "multi_modal_projector.", text.d_model, enc.d_model);
  return std::make_unique<VisionLanguageModel>(v, std::move(e), std::make_unique<HookedTransformer>(enc, std::move(vw)), std::move(pr),
                                               std::make_unique<HookedTransformer>(text, std::move(tw)));
}

at::Tensor clipPreprocess(const std::vector<uint8_t>& rgb, int64_t width, int64_t height, const VisionTowerConfig& c) {
  if (width <= 0 || height <= 0) throw InputError("empty image (" + std::to_string(width) + " x " + std::to_string(height) + ")");
  if (static_cast<int64_t>(rgb.size()) != width * height * 3)
    throw InputError("image buffer holds " + std::to_string(rgb.size()) + " bytes, expected " + std::to_string(width * height * 3) +
                     " for " + std::to_string(width) + " x " + std::to_string(height) + " RGB");
  const int64_t S = c.image_size;
  at::Tensor img = at::from_blob(const_cast<uint8_t*>(rgb.data()), {height, width, 3}, at::kByte)
                       .permute({2, 0, 1})
                       .to(at::kFloat)
                       .unsqueeze(0);  // [1, 3, H, W], 0..255
  // Shorter side to S, keeping the aspect ratio (CLIPImageProcessor's shortest_edge), then crop.
  const double scale = static_cast<double>(S) / std::min(width, height);
  const int64_t newH = std::max<int64_t>(S, std::llround(height * scale)), newW = std::max<int64_t>(S, std::llround(width * scale));
  if (newH != height || newW != width)
    img = at::upsample_bicubic2d(img, {newH, newW}, /*align_corners=*/false).clamp(0, 255);
  const int64_t top = (newH - S) / 2, left = (newW - S) / 2;
  img = img.slice(2, top, top + S).slice(3, left, left + S) / 255.0;
  at::Tensor mean = at::tensor(std::vector<float>(c.mean.begin(), c.mean.end())).view({1, 3, 1, 1});
  at::Tensor std = at::tensor(std::vector<float>(c.std.begin(), c.std.end())).view({1, 3, 1, 1});
  return ((img - mean) / std).contiguous();
}

}  // namespace headlab
