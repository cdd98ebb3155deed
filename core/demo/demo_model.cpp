#include "headlab/core/demo_model.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/hf_export.h"
#include "headlab/core/generate.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/model_loader.h"
#include "training_util.h"

namespace headlab {

namespace fs = std::filesystem;

// Changes whenever the recipe's data, model or defaults change: a cache from another recipe is retrained.
constexpr const char* kRecipe = "headlab demo v2";

namespace {
const std::vector<std::string> kNames = {"anna", "ben", "carl", "dora", "emma", "finn", "gina", "hugo", "ida", "jack",
                                         "kate", "leo", "mia", "nora", "otto", "paul", "rosa", "sam", "tina", "uma"};
const std::vector<std::string> kNouns = {"dog", "cat", "bird", "boy", "girl", "man", "woman", "tree", "house", "car",
                                         "ball", "book", "river", "hill", "park", "garden", "city", "road", "boat", "cake",
                                         "apple", "flower", "king", "queen", "horse", "fish", "table", "door", "window", "box"};
const std::vector<std::string> kVerbs = {"sees", "likes", "finds", "takes", "wants", "makes", "helps", "calls", "meets",
                                         "loves", "watches", "follows", "opens", "paints", "holds", "carries"};
const std::vector<std::string> kAdjectives = {"big", "small", "red", "blue", "green", "old", "young", "happy", "sad",
                                              "tall", "little", "bright", "dark", "quiet", "fast", "slow"};
const std::vector<std::string> kPlaces = {"in", "near", "behind", "under", "by"};
const std::vector<std::string> kDigits = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

int64_t idOf(const std::string& w) {
  static const auto table = [] {
    std::unordered_map<std::string, int64_t> t;
    const auto& v = DemoTasks::vocabulary();
    for (size_t i = 0; i < v.size(); ++i) t.emplace(v[i], static_cast<int64_t>(i));
    return t;
  }();
  auto it = table.find(w);
  return it == table.end() ? 1 : it->second;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ') {
      if (!cur.empty()) out.push_back(cur), cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}
}  // namespace

const std::vector<std::string>& DemoTasks::vocabulary() {
  static const std::vector<std::string> vocab = [] {
    std::vector<std::string> v = {"<pad>", "<unk>", "<bos>", ".", "?", ":", ",", "the", "a", "of", "is", "secret", "code",
                                  "question", "what", "and", "to", "with", "at", "it"};
    for (const auto* list : {&kDigits, &kNames, &kNouns, &kVerbs, &kAdjectives, &kPlaces})
      for (const auto& w : *list) v.push_back(w);
    return v;
  }();
  return vocab;
}

DemoTasks::DemoTasks(uint64_t seed) : m_rng(seed) {}

std::string DemoTasks::pick(const std::vector<std::string>& from) {
  return from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(m_rng)];
}

std::string DemoTasks::filler(int64_t words) {
  std::string out;
  int64_t n = 0;
  while (n < words) {
    std::string s;
    switch (std::uniform_int_distribution<int>(0, 2)(m_rng)) {
      case 0: s = "the " + pick(kAdjectives) + " " + pick(kNouns) + " " + pick(kVerbs) + " the " + pick(kNouns) + " ."; break;
      case 1: s = pick(kNames) + " " + pick(kVerbs) + " a " + pick(kNouns) + " " + pick(kPlaces) + " the " + pick(kNouns) + " ."; break;
      default: s = "a " + pick(kNouns) + " is " + pick(kAdjectives) + " and " + pick(kAdjectives) + " ."; break;
    }
    out += (out.empty() ? "" : " ") + s;
    n += static_cast<int64_t>(split(s).size());
  }
  return out;
}

DemoExample DemoTasks::retrieval(int64_t contextWords, double depth) {
  const std::string name = pick(kNames);
  std::string other = pick(kNames);
  while (other == name) other = pick(kNames);
  const std::string code = pick(kDigits) + " " + pick(kDigits) + " " + pick(kDigits);
  const std::vector<std::string> needle = split("the secret code of " + name + " is " + code + " .");
  // A second code for another name: the answer must be found by matching the name, not by
  // finding "the" secret code.
  const std::vector<std::string> distractor =
      split("the secret code of " + other + " is " + pick(kDigits) + " " + pick(kDigits) + " " + pick(kDigits) + " .");
  const int64_t needles = m_distractor ? 2 : 1;
  std::vector<std::string> hay = split(filler(std::max<int64_t>(1, contextWords - needles * static_cast<int64_t>(needle.size()))));
  std::vector<size_t> boundaries{0};
  for (size_t i = 0; i < hay.size(); ++i)
    if (hay[i] == ".") boundaries.push_back(i + 1);
  if (depth < 0) depth = std::uniform_real_distribution<double>(0.0, 1.0)(m_rng);
  size_t at = boundaries[std::min(boundaries.size() - 1, static_cast<size_t>(std::lround(depth * (boundaries.size() - 1))))];
  size_t other_at = boundaries[std::uniform_int_distribution<size_t>(0, boundaries.size() - 1)(m_rng)];
  DemoExample ex;
  for (size_t i = 0; i <= hay.size(); ++i) {
    if (i == at) {
      ex.needleBegin = ex.words.size();
      ex.words.insert(ex.words.end(), needle.begin(), needle.end());
      ex.needleEnd = ex.words.size();
    }
    if (m_distractor && i == other_at) ex.words.insert(ex.words.end(), distractor.begin(), distractor.end());
    if (i < hay.size()) ex.words.push_back(hay[i]);
  }
  for (const auto& w : split("question : the secret code of " + name + " is")) ex.words.push_back(w);
  ex.targetBegin = ex.words.size();
  for (const auto& w : split(code + " .")) ex.words.push_back(w);
  ex.targetEnd = ex.words.size();
  ex.answer = code;
  return ex;
}

DemoExample DemoTasks::induction(int64_t length, int64_t maxPrefix) {
  const auto& v = vocabulary();
  DemoExample ex;
  std::uniform_int_distribution<size_t> any(3, v.size() - 1);
  // A random-length prefix of random words: the copy must be found by content, not by position.
  const int64_t prefix = maxPrefix > 0 ? std::uniform_int_distribution<int64_t>(0, maxPrefix)(m_rng) : 0;
  for (int64_t i = 0; i < prefix; ++i) ex.words.push_back(v[any(m_rng)]);
  const size_t start = ex.words.size();
  for (int64_t i = 0; i < length; ++i) ex.words.push_back(v[any(m_rng)]);
  ex.targetBegin = ex.words.size() + 1;  // the first word of the copy is not predictable
  for (int64_t i = 0; i < length; ++i) ex.words.push_back(ex.words[start + static_cast<size_t>(i)]);
  ex.targetEnd = ex.words.size();
  return ex;
}

std::string demoCacheDir() { return training::cacheDir("demo"); }

namespace {
ModelConfig demoConfig(const DemoTrainingOptions& o) {
  ModelConfig c;
  c.arch = "gpt2";
  c.n_layers = o.layers, c.n_heads = o.heads, c.n_kv_heads = o.heads, c.d_model = o.dModel, c.d_head = o.dModel / o.heads;
  c.d_mlp = o.mlpRatio * o.dModel;
  c.d_vocab = static_cast<int64_t>(DemoTasks::vocabulary().size()), c.n_ctx = o.maxLen;
  c.norm = NormKind::LayerNorm, c.act = Activation::Gelu, c.gated_mlp = false, c.learned_pos = true, c.rope = RopeLayout::None;
  c.tied_embeddings = true, c.bos_token_id = 2;
  return c;
}

ModelWeights initWeights(const ModelConfig& c, double posStd) {
  auto r = [](std::vector<int64_t> s, double std) { return (at::randn(s) * std).requires_grad_(true); };
  auto ones = [](int64_t n) { return at::ones({n}).requires_grad_(true); };
  auto zeros = [](int64_t n) { return at::zeros({n}).requires_grad_(true); };
  const int64_t D = c.d_model, F = c.d_mlp;
  const double proj = 0.02 / std::sqrt(2.0 * c.n_layers);
  ModelWeights w;
  w.embed = r({c.d_vocab, D}, 0.02);
  w.unembed = w.embed;
  // Sinusoidal start for the learned positions: a clear positional signal lets the
  // previous-token head, and with it the induction circuit, form within the short budget.
  {
    at::Tensor pos = at::arange(c.n_ctx, at::kFloat).unsqueeze(1);
    at::Tensor freq = at::exp(at::arange(0, D, 2, at::kFloat) * (-std::log(10000.0) / D));
    at::Tensor pe = at::zeros({c.n_ctx, D});
    pe.slice(1, 0, D, 2).copy_(at::sin(pos * freq));
    pe.slice(1, 1, D, 2).copy_(at::cos(pos * freq));
    w.pos_embed = (pe * posStd).requires_grad_(true);
  }
  w.lnf_w = ones(D), w.lnf_b = zeros(D);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.ln1_w = ones(D), L.ln1_b = zeros(D), L.ln2_w = ones(D), L.ln2_b = zeros(D);
    L.wq = r({D, D}, 0.02), L.wk = r({D, D}, 0.02), L.wv = r({D, D}, 0.02), L.wo = r({D, D}, proj);
    L.bq = zeros(D), L.bk = zeros(D), L.bv = zeros(D), L.bo = zeros(D);
    L.w_in = r({F, D}, 0.02), L.b_in = zeros(F), L.w_out = r({D, F}, proj), L.b_out = zeros(D);
    w.layers.push_back(std::move(L));
  }
  return w;
}

std::vector<at::Tensor*> parameters(ModelWeights& w) {
  std::vector<at::Tensor*> p{&w.embed, &w.pos_embed, &w.lnf_w, &w.lnf_b};
  for (auto& L : w.layers)
    for (at::Tensor* t : definedLayerTensors(L)) p.push_back(t);
  return p;
}

// A batch of examples as [batch, T] ids and per-position loss weights (predicting position t+1 at t).
void makeBatch(DemoTasks& tasks, const DemoTrainingOptions& o, std::mt19937_64& rng, at::Tensor& ids, at::Tensor& weights) {
  const int64_t T = o.maxLen;
  ids = at::zeros({o.batch, T}, at::kLong);
  weights = at::zeros({o.batch, T - 1});
  auto* id = ids.data_ptr<int64_t>();
  auto* wt = weights.data_ptr<float>();
  for (int b = 0; b < o.batch; ++b) {
    // Half retrieval, half repeated sequences: the induction circuit the second needs is what
    // the first uses to copy the code from the needle.
    DemoExample ex = b % 2 == 0 ? tasks.retrieval(std::uniform_int_distribution<int64_t>(20, T - 16)(rng))
                                : tasks.induction(std::uniform_int_distribution<int64_t>(6, (T - 1) / 2)(rng), 0);
    const int64_t n = std::min<int64_t>(T, static_cast<int64_t>(ex.words.size()) + 1);
    id[b * T] = 2;  // <bos>
    for (int64_t t = 1; t < n; ++t) id[b * T + t] = idOf(ex.words[t - 1]);
    for (int64_t t = 0; t + 1 < n; ++t) {
      const size_t word = static_cast<size_t>(t);  // position t predicts words[t]
      const bool target = word >= ex.targetBegin && word < ex.targetEnd;
      const bool filler = ex.needleEnd > 0 && word < ex.targetBegin;
      wt[b * (T - 1) + t] = target ? 1.0f : filler ? static_cast<float>(o.fillerWeight) : 0.0f;
    }
  }
}

nlohmann::json tokenizerJson() {
  nlohmann::json vocab = nlohmann::json::object();
  const auto& v = DemoTasks::vocabulary();
  for (size_t i = 0; i < v.size(); ++i) vocab[v[i]] = i;
  return {{"version", "1.0"},
          {"added_tokens", {{{"id", 0}, {"content", "<pad>"}, {"special", true}}, {{"id", 1}, {"content", "<unk>"}, {"special", true}},
                            {{"id", 2}, {"content", "<bos>"}, {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
          {"post_processor", {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}},
          {"decoder", nullptr},
          {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}}}};
}

void save(const std::string& folder, const ModelConfig& c, const ModelWeights& w, const nlohmann::json& training) {
  fs::create_directories(folder);
  nlohmann::json cfg = {{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}, {"n_embd", c.d_model}, {"n_layer", c.n_layers},
                        {"n_head", c.n_heads}, {"n_inner", c.d_mlp}, {"n_positions", c.n_ctx}, {"vocab_size", c.d_vocab},
                        {"activation_function", "gelu"}, {"layer_norm_epsilon", c.norm_eps}, {"tie_word_embeddings", true},
                        {"bos_token_id", 2}, {"eos_token_id", 2}};
  std::ofstream(fs::path(folder) / "config.json") << cfg.dump(2);
  std::ofstream(fs::path(folder) / "tokenizer.json") << tokenizerJson().dump(1);
  std::ofstream(fs::path(folder) / "training.json") << training.dump(1);
  writeSafetensors((fs::path(folder) / "model.safetensors").string(), hfTensors(c, w));
}
}  // namespace

void trainDemoModel(const std::string& folder, const DemoTrainingOptions& o,
                    const Progress& progress) {
  training::writeFolderAtomically(folder, [&](const std::string& temp) {
    at::manual_seed(o.seed);
    std::mt19937_64 rng(o.seed);
    DemoTasks tasks(o.seed + 1);
    const ModelConfig c = demoConfig(o);
    ModelWeights w = initWeights(c, o.posInitStd);
    training::AdamW opt(parameters(w), 0.9, 0.98, 0.01, 1e-8);
    HookedTransformer model(c, w);  // shares the parameter tensors
    nlohmann::json losses = nlohmann::json::array();
    auto t0 = std::chrono::steady_clock::now();
    double smooth = 0;
    for (int step = 1; step <= o.steps; ++step) {
      at::Tensor ids, weights;
      makeBatch(tasks, o, rng, ids, weights);
      at::Tensor loss;
      {
        c10::AutoGradMode grad(true);
        at::Tensor logits = model.forward(ids);  // [batch, T, vocab]
        at::Tensor logp = at::log_softmax(logits.slice(1, 0, o.maxLen - 1), -1);
        at::Tensor nll = -logp.gather(2, ids.slice(1, 1).unsqueeze(-1)).squeeze(-1);  // [batch, T-1]
        loss = (nll * weights).sum() / weights.sum();
        opt.zeroGrad();
        loss.backward();
      }
      opt.step(step, training::warmupCosine(o.lr, step, o.steps, 60));
      const double l = loss.item<double>();
      smooth = step == 1 ? l : 0.95 * smooth + 0.05 * l;
      if (step % 10 == 0 || step == o.steps) losses.push_back({{"step", step}, {"loss", l}});
      if (progress && (step % 5 == 0 || step == o.steps)) {
        char stage[96];
        std::snprintf(stage, sizeof stage, "training the demo model: step %d/%d, loss %.3f", step, o.steps, smooth);
        if (!progress(static_cast<double>(step) / o.steps, stage)) throw CancelledError();
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json training = {{"recipe", kRecipe}, {"seed", o.seed}, {"steps", o.steps}, {"batch", o.batch},
                               {"max_len", o.maxLen}, {"lr", o.lr}, {"layers", o.layers}, {"d_model", o.dModel}, {"heads", o.heads},
                               {"filler_weight", o.fillerWeight}, {"seconds", seconds}, {"loss_curve", losses}};
    c10::AutoGradMode noGrad(false);
    save(temp, c, w, training);
  });
}

std::string demoAnswer(HookedTransformer& model, const Tokenizer& tok, const DemoExample& ex) {
  std::string prompt;
  for (size_t i = 0; i < ex.targetBegin; ++i) prompt += (i ? " " : "") + ex.words[i];
  GenerateOptions g;
  g.maxNewTokens = 3;
  g.stopAtEos = false;
  auto out = generate(model, tok.encode(prompt, true), g);
  return tok.decode(out);
}

DemoEvaluation evaluateDemo(HookedTransformer& model, const Tokenizer& tok, int prompts, uint64_t seed, int64_t contextWords) {
  c10::InferenceMode guard;
  DemoTasks tasks(seed);
  DemoEvaluation e;
  int correct = 0;
  for (int i = 0; i < prompts; ++i) {
    DemoExample ex = tasks.retrieval(contextWords);
    correct += demoAnswer(model, tok, ex) == ex.answer;
  }
  e.retrievalPrompts = prompts;
  e.retrievalAccuracy = static_cast<double>(correct) / prompts;
  int64_t hits = 0, total = 0;
  for (int i = 0; i < prompts / 2; ++i) {
    DemoExample ex = tasks.induction(20);
    std::vector<int64_t> ids{tok.bos()};
    for (const auto& w : ex.words) ids.push_back(tok.encode(w, false).at(0));
    at::Tensor pred = model.forward(at::tensor(ids, at::kLong).unsqueeze(0))[0].argmax(-1);  // [pos]
    for (size_t t = ex.targetBegin; t < ex.targetEnd; ++t) {
      hits += pred[static_cast<int64_t>(t)].item<int64_t>() == ids[t + 1];
      ++total;
    }
  }
  e.inductionSequences = prompts / 2;
  e.inductionAccuracy = total ? static_cast<double>(hits) / total : 0;
  return e;
}

std::string ensureDemoModel(const Progress& progress, const DemoTrainingOptions& options) {
  return training::ensureCached(
      demoCacheDir(), kRecipe, [](const std::string& dir) { loadModel(dir); },
      [&](const std::string& dir) { trainDemoModel(dir, options, progress); });
}

}  // namespace headlab
