#include "headlab/core/demo_vlm.h"

#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/hf_export.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"
#include "training_util.h"

namespace headlab {

namespace fs = std::filesystem;

namespace {
constexpr const char* kVlmRecipe = "headlab demo-vlm v1";
constexpr int64_t kImage = 16, kPatch = 4, kCell = 8;
const std::vector<std::string> kColours = {"red", "green", "blue", "yellow", "cyan", "magenta"};
const float kRgb[6][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}, {0, 1, 1}, {1, 0, 1}};
const std::vector<std::string> kShapes = {"square", "cross", "circle"};
const char* kRows[2] = {"top", "bottom"};
const char* kCols[2] = {"left", "right"};

struct Shapes {
  int64_t dModel = 64, layers = 2, heads = 8, dMlp = 128;
  int64_t dVision = 32, visionLayers = 1, visionHeads = 2, visionMlp = 64;
};
}  // namespace

const std::vector<std::string>& DemoVlmTasks::vocabulary() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> w = {"<pad>", "<unk>", "<bos>", "<image>", "what", "colour", "shape", "is", "at",
                                  "top",   "bottom", "left", "right",  "?",    "none"};
    for (const auto* list : {&kColours, &kShapes})
      for (const auto& x : *list) w.push_back(x);
    return w;
  }();
  return v;
}

DemoVlmTasks::DemoVlmTasks(uint64_t seed) : m_rng(seed) {}

DemoVlmExample DemoVlmTasks::example() {
  std::uniform_int_distribution<int> colour(0, 5), shape(0, 2), cell(0, 3);
  std::bernoulli_distribution occupied(0.75), askColour(0.5);
  at::Tensor px = at::zeros({3, kImage, kImage});
  auto a = px.accessor<float, 3>();
  int cellColour[4], cellShape[4];
  for (int c = 0; c < 4; ++c) {
    cellColour[c] = -1, cellShape[c] = -1;
    if (!occupied(m_rng)) continue;
    cellColour[c] = colour(m_rng), cellShape[c] = shape(m_rng);
    const int y0 = (c / 2) * kCell, x0 = (c % 2) * kCell;
    for (int y = 1; y < kCell - 1; ++y)
      for (int x = 1; x < kCell - 1; ++x) {
        const double dy = y - 3.5, dx = x - 3.5;
        const bool on = cellShape[c] == 0 ? true : cellShape[c] == 1 ? (y == 3 || y == 4 || x == 3 || x == 4) : dy * dy + dx * dx <= 9.0;
        if (on)
          for (int ch = 0; ch < 3; ++ch) a[ch][y0 + y][x0 + x] = kRgb[cellColour[c]][ch];
      }
  }
  const int q = cell(m_rng);
  const bool byColour = askColour(m_rng);
  DemoVlmExample ex;
  ex.pixels = px;
  ex.question = std::string("<image> what ") + (byColour ? "colour" : "shape") + " is at " + kRows[q / 2] + " " + kCols[q % 2] + " ?";
  ex.answer = cellColour[q] < 0 ? "none" : byColour ? kColours[cellColour[q]] : kShapes[cellShape[q]];
  return ex;
}

std::string demoVlmCacheDir() { return training::cacheDir("demo-vlm"); }

namespace {
int64_t wordId(const std::string& w) {
  static const auto table = [] {
    std::map<std::string, int64_t> t;
    const auto& v = DemoVlmTasks::vocabulary();
    for (size_t i = 0; i < v.size(); ++i) t[v[i]] = static_cast<int64_t>(i);
    return t;
  }();
  auto it = table.find(w);
  return it == table.end() ? 1 : it->second;
}

std::vector<int64_t> encodeWords(const std::string& s) {
  std::vector<int64_t> ids{2};
  std::string cur;
  for (char c : s + " ") {
    if (c == ' ') {
      if (!cur.empty()) ids.push_back(wordId(cur)), cur.clear();
    } else {
      cur += c;
    }
  }
  return ids;
}

at::Tensor normalise(const at::Tensor& px, const VisionTowerConfig& c) {  // [B, 3, S, S] in [0, 1]
  at::Tensor mean = at::tensor(std::vector<float>(c.mean.begin(), c.mean.end())).view({1, 3, 1, 1});
  at::Tensor std = at::tensor(std::vector<float>(c.std.begin(), c.std.end())).view({1, 3, 1, 1});
  return (px - mean) / std;
}

nlohmann::json tokenizerJson() {
  nlohmann::json vocab = nlohmann::json::object();
  const auto& v = DemoVlmTasks::vocabulary();
  for (size_t i = 0; i < v.size(); ++i) vocab[v[i]] = i;
  nlohmann::json added = nlohmann::json::array();
  for (int i = 0; i < 4; ++i) added.push_back({{"id", i}, {"content", v[i]}, {"special", true}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
          {"post_processor", {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}},
          {"decoder", nullptr},
          {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}}}};
}

struct Trainable {
  VisionLanguageModel::Embeddings emb;
  ModelWeights vision, text;
  VisionLanguageModel::Projector proj;
  std::vector<at::Tensor*> params;
};

nlohmann::json llavaConfig(const Shapes& s) {
  const int64_t V = static_cast<int64_t>(DemoVlmTasks::vocabulary().size());
  return {{"model_type", "llava"},
          {"architectures", {"LlavaForConditionalGeneration"}},
          {"image_token_index", 3},
          {"vision_feature_layer", -1},
          {"vision_feature_select_strategy", "default"},
          {"projector_hidden_act", "gelu"},
          {"text_config",
           {{"model_type", "llama"}, {"hidden_size", s.dModel}, {"intermediate_size", s.dMlp}, {"num_hidden_layers", s.layers},
            {"num_attention_heads", s.heads}, {"num_key_value_heads", s.heads}, {"vocab_size", V}, {"max_position_embeddings", 32},
            {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"hidden_act", "silu"}, {"tie_word_embeddings", false},
            {"bos_token_id", 2}}},
          {"vision_config",
           {{"model_type", "clip_vision_model"}, {"hidden_size", s.dVision}, {"intermediate_size", s.visionMlp},
            {"num_hidden_layers", s.visionLayers}, {"num_attention_heads", s.visionHeads}, {"image_size", kImage},
            {"patch_size", kPatch}, {"hidden_act", "quick_gelu"}, {"layer_norm_eps", 1e-5}, {"num_channels", 3}}}};
}

void save(const std::string& folder, const Shapes& s, const VisionLanguageModel& vlm, const nlohmann::json& training) {
  fs::create_directories(folder);
  std::ofstream(fs::path(folder) / "config.json") << llavaConfig(s).dump(2);
  std::ofstream(fs::path(folder) / "tokenizer.json") << tokenizerJson().dump(1);
  std::ofstream(fs::path(folder) / "training.json") << training.dump(1);
  writeSafetensors((fs::path(folder) / "model.safetensors").string(), llavaHfTensors(vlm));
}
}  // namespace

namespace {
// Random initial weights (GPT-2-style scales) and the list of trainable tensors (pointers into t,
// which therefore stays where it is); draws from the global generator in a fixed order.
void initialWeights(Trainable& t, const Shapes& s, int64_t V) {
  auto r = [](std::vector<int64_t> shape, double std) {
    return (at::randn(shape) * std).requires_grad_(true);
  };
  auto ones = [](int64_t n) { return at::ones({n}).requires_grad_(true); };
  auto zeros = [](int64_t n) { return at::zeros({n}).requires_grad_(true); };
  const int64_t Dv = s.dVision, D = s.dModel, N = (kImage / kPatch) * (kImage / kPatch);
  t.emb.patch = r({Dv, 3 * kPatch * kPatch}, 0.02), t.emb.class_token = r({Dv}, 0.02), t.emb.positions = r({N + 1, Dv}, 0.02);
  t.emb.pre_ln_w = ones(Dv), t.emb.pre_ln_b = zeros(Dv);
  t.vision.embed = at::zeros({1, Dv}), t.vision.unembed = t.vision.embed;
  t.vision.lnf_w = at::ones({Dv}), t.vision.lnf_b = at::zeros({Dv});
  for (int64_t l = 0; l < s.visionLayers; ++l) {
    LayerWeights L;
    L.ln1_w = ones(Dv), L.ln1_b = zeros(Dv), L.ln2_w = ones(Dv), L.ln2_b = zeros(Dv);
    L.wq = r({Dv, Dv}, 0.02), L.wk = r({Dv, Dv}, 0.02), L.wv = r({Dv, Dv}, 0.02), L.wo = r({Dv, Dv}, 0.02);
    L.bq = zeros(Dv), L.bk = zeros(Dv), L.bv = zeros(Dv), L.bo = zeros(Dv);
    L.w_in = r({s.visionMlp, Dv}, 0.02), L.b_in = zeros(s.visionMlp), L.w_out = r({Dv, s.visionMlp}, 0.02), L.b_out = zeros(Dv);
    t.vision.layers.push_back(L);
  }
  t.proj.w1 = r({D, Dv}, 0.02), t.proj.b1 = zeros(D), t.proj.w2 = r({D, D}, 0.02), t.proj.b2 = zeros(D);
  t.text.embed = r({V, D}, 0.02), t.text.lnf_w = ones(D), t.text.unembed = r({V, D}, 0.02);
  for (int64_t l = 0; l < s.layers; ++l) {
    LayerWeights L;
    L.ln1_w = ones(D), L.ln2_w = ones(D);
    L.wq = r({D, D}, 0.02), L.wk = r({D, D}, 0.02), L.wv = r({D, D}, 0.02), L.wo = r({D, D}, 0.02 / std::sqrt(2.0 * s.layers));
    L.w_gate = r({s.dMlp, D}, 0.02), L.w_in = r({s.dMlp, D}, 0.02), L.w_out = r({D, s.dMlp}, 0.02 / std::sqrt(2.0 * s.layers));
    t.text.layers.push_back(L);
  }
  for (at::Tensor* p : {&t.emb.patch, &t.emb.class_token, &t.emb.positions, &t.emb.pre_ln_w, &t.emb.pre_ln_b, &t.proj.w1, &t.proj.b1,
                        &t.proj.w2, &t.proj.b2, &t.text.embed, &t.text.lnf_w, &t.text.unembed})
    t.params.push_back(p);
  for (auto* tower : {&t.vision, &t.text})
    for (auto& L : tower->layers)
      for (at::Tensor* p : definedLayerTensors(L)) t.params.push_back(p);
}

void train(const std::string& temp, const DemoVlmOptions& o, const Progress& progress);
}  // namespace

void trainDemoVlm(const std::string& folder, const DemoVlmOptions& o, const Progress& progress) {
  training::writeFolderAtomically(folder, [&](const std::string& temp) { train(temp, o, progress); });
}

namespace {
void train(const std::string& temp, const DemoVlmOptions& o, const Progress& progress) {
  at::manual_seed(o.seed);
  DemoVlmTasks tasks(o.seed + 1);
  const Shapes s;
  const int64_t V = static_cast<int64_t>(DemoVlmTasks::vocabulary().size());
  Trainable t;
  initialWeights(t, s, V);
  const int64_t Dv = s.dVision, D = s.dModel, N = (kImage / kPatch) * (kImage / kPatch);

  // The model shares the parameter tensors, so the training forward is the runtime's forward.
  VisionTowerConfig vc;
  vc.image_size = kImage, vc.patch_size = kPatch, vc.feature_layers = s.visionLayers, vc.drop_class_token = true, vc.image_token_id = 3;
  ModelConfig enc;
  enc.arch = "clip_vision", enc.d_model = Dv, enc.d_mlp = s.visionMlp, enc.n_layers = s.visionLayers, enc.n_heads = s.visionHeads;
  enc.n_kv_heads = s.visionHeads, enc.d_head = Dv / s.visionHeads, enc.d_vocab = 1, enc.n_ctx = N + 1, enc.norm = NormKind::LayerNorm;
  enc.act = Activation::QuickGelu, enc.gated_mlp = false, enc.causal = false, enc.rope = RopeLayout::None;
  ModelConfig text;
  text.arch = "llama", text.d_model = D, text.d_mlp = s.dMlp, text.n_layers = s.layers, text.n_heads = s.heads, text.n_kv_heads = s.heads;
  text.d_head = D / s.heads, text.d_vocab = V, text.n_ctx = 32, text.norm = NormKind::RmsNorm, text.norm_eps = 1e-6;
  text.act = Activation::Silu, text.gated_mlp = true, text.rope = RopeLayout::RotateHalf, text.rope_theta = 10000.0, text.bos_token_id = 2;
  VisionLanguageModel vlm(vc, t.emb, std::make_unique<HookedTransformer>(enc, t.vision), t.proj, std::make_unique<HookedTransformer>(text, t.text));

  training::AdamW opt(t.params, 0.9, 0.98, 0.01, 1e-8);
  nlohmann::json losses = nlohmann::json::array();
  auto t0 = std::chrono::steady_clock::now();
  double smooth = 0;
  for (int step = 1; step <= o.steps; ++step) {
    std::vector<at::Tensor> px;
    std::vector<int64_t> ids, answers;
    for (int b = 0; b < o.batch; ++b) {
      DemoVlmExample ex = tasks.example();
      px.push_back(ex.pixels);
      auto q = encodeWords(ex.question);  // bos <image> what ... ?
      q.erase(q.begin() + 1);             // the image tokens take the placeholder's place
      ids.insert(ids.end(), q.begin(), q.end());
      answers.push_back(wordId(ex.answer));
    }
    const int64_t Tq = static_cast<int64_t>(ids.size()) / o.batch;
    at::Tensor idT = at::tensor(ids, at::kLong).view({o.batch, Tq});
    at::Tensor loss;
    {
      c10::AutoGradMode grad(true);
      at::Tensor img = vlm.imageTokens(normalise(at::stack(px), vc));  // [B, N, D]
      at::Tensor embeds = at::cat({vlm.language().embed(idT.slice(1, 0, 1)), img, vlm.language().embed(idT.slice(1, 1))}, 1);
      at::Tensor logits = vlm.language().forwardFrom(0, embeds, /*lastPositionOnly=*/true).squeeze(1);  // [B, V]
      loss = at::cross_entropy_loss(logits, at::tensor(answers, at::kLong));
      opt.zeroGrad();
      loss.backward();
    }
    opt.step(step, training::warmupCosine(o.lr, step, o.steps, 30));
    const double l = loss.item<double>();
    smooth = step == 1 ? l : 0.95 * smooth + 0.05 * l;
    if (step % 10 == 0 || step == o.steps) losses.push_back({{"step", step}, {"loss", l}});
    if (progress && (step % 5 == 0 || step == o.steps)) {
      char stage[96];
      std::snprintf(stage, sizeof stage, "training the demo-vlm model: step %d/%d, loss %.3f", step, o.steps, smooth);
      if (!progress(static_cast<double>(step) / o.steps, stage)) throw CancelledError();
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json training = {{"recipe", kVlmRecipe}, {"seed", o.seed}, {"steps", o.steps}, {"batch", o.batch},
                             {"lr", o.lr},         {"seconds", seconds}, {"loss_curve", losses}};
  c10::AutoGradMode noGrad(false);
  save(temp, s, vlm, training);
}
}  // namespace

std::string ensureDemoVlm(const Progress& progress, const DemoVlmOptions& options) {
  return training::ensureCached(
      demoVlmCacheDir(), kVlmRecipe, [](const std::string& dir) { loadLlava(dir); },
      [&](const std::string& dir) { trainDemoVlm(dir, options, progress); });
}

double evaluateDemoVlm(VisionLanguageModel& vlm, const Tokenizer& tok, int questions, uint64_t seed) {
  c10::InferenceMode guard;
  DemoVlmTasks tasks(seed);
  int correct = 0;
  for (int i = 0; i < questions; ++i) {
    DemoVlmExample ex = tasks.example();
    VlmInput in = vlm.prepare(tok.encode(ex.question, true), normalise(ex.pixels.unsqueeze(0), vlm.visionConfig()));
    const int64_t next = vlm.forward(in)[0][-1].argmax().item<int64_t>();
    correct += tok.tokenString(next) == ex.answer;
  }
  return static_cast<double>(correct) / questions;
}

}  // namespace headlab
