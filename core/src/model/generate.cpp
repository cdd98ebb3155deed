#include "headlab/core/generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <functional>
#include <random>

#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/tokenizer.h"

namespace headlab {

namespace {
int64_t sample(const at::Tensor& logits, const GenerateOptions& opt, std::mt19937_64& rng) {
  if (opt.greedy || opt.temperature <= 0.0) return logits.argmax().item<int64_t>();
  at::Tensor probs = at::softmax(logits.to(at::kFloat) / opt.temperature, -1).cpu();
  if (opt.topP < 1.0) {
    auto sorted = probs.sort(-1, true);
    at::Tensor vals = std::get<0>(sorted), idx = std::get<1>(sorted);
    at::Tensor keep = (vals.cumsum(-1) - vals) < opt.topP;
    probs = at::zeros_like(probs).scatter(0, idx, vals * keep);
    probs = probs / probs.sum();
  }
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double r = u(rng), acc = 0.0;
  const float* p = probs.data_ptr<float>();
  for (int64_t i = 0; i < probs.size(0); ++i) {
    acc += p[i];
    if (r < acc) return i;
  }
  return probs.size(0) - 1;
}


// The decoding loop shared by token and embedding prompts: `prefill` runs the prompt into the
// cache and returns its logits [1, P, d_vocab]; each new token then runs one position.
std::vector<int64_t> decode(HookedTransformer& model, int64_t promptLength, const std::function<at::Tensor(KvCache&)>& prefill,
                            const GenerateOptions& opt, int64_t bos, int64_t eos) {
  std::mt19937_64 rng(opt.seed);
  KvCache cache;
  std::vector<int64_t> out;
  // k new tokens need P + k - 1 forwarded positions.
  const int64_t room = model.config().n_ctx + 1 - promptLength;
  const int64_t steps = std::min(opt.maxNewTokens, room);
  at::Tensor logits;
  for (int64_t i = 0; i < steps; ++i) {
    logits = i == 0 ? prefill(cache) : model.forward(at::tensor(std::vector<int64_t>{out.back()}, at::kLong).unsqueeze(0), &cache);
    int64_t next = sample(logits[0][-1], opt, rng);
    if (opt.stopAtEos && (next == eos || next == bos)) break;
    out.push_back(next);
    if (opt.onToken && !opt.onToken(next)) break;
  }
  return out;
}
}  // namespace

std::vector<int64_t> generate(HookedTransformer& model, const std::vector<int64_t>& prompt, const GenerateOptions& opt,
                              int64_t bos, int64_t eos) {
  if (prompt.empty()) throw InputError("empty prompt: nothing to continue");
  c10::InferenceMode guard;
  at::Tensor input = at::tensor(prompt, at::kLong).unsqueeze(0);
  model.checkTokens(input);  // a prompt longer than the context is an error, not an empty continuation
  return decode(model, static_cast<int64_t>(prompt.size()), [&](KvCache& cache) {
    at::Tensor logits = model.forward(input, &cache);  // [1, pos, d_vocab]
    model.requireFinite(logits, input);
    return logits;
  }, opt, bos, eos);
}

std::vector<int64_t> generateFromEmbeddings(HookedTransformer& model, const at::Tensor& promptEmbeds, const GenerateOptions& opt,
                                            int64_t bos, int64_t eos) {
  if (!promptEmbeds.defined() || promptEmbeds.dim() != 3 || promptEmbeds.size(0) != 1 ||
      promptEmbeds.size(2) != model.config().d_model)
    throw InputError("prompt embeddings must be [1, pos, " + std::to_string(model.config().d_model) + "], got " +
                     (promptEmbeds.defined() ? c10::str(promptEmbeds.sizes()) : std::string("none")));
  const int64_t P = promptEmbeds.size(1);
  if (P == 0) throw InputError("empty prompt: nothing to continue");
  if (P > model.config().n_ctx)
    throw InputError("prompt of " + std::to_string(P) + " positions is longer than the model's context of " +
                     std::to_string(model.config().n_ctx));
  c10::InferenceMode guard;
  return decode(model, P, [&](KvCache& cache) {
    at::Tensor resid = promptEmbeds.to(model.device(), model.dtype());
    for (int l = 0; l < model.config().n_layers; ++l) resid = model.block(l, resid, &cache, 0);
    cache.length = P;
    at::Tensor logits = model.unembed(resid);
    if (!at::isfinite(logits).all().item<bool>()) throw NumericError("non-finite logits on the prompt embeddings");
    return logits;
  }, opt, bos, eos);
}

std::string renderGeneration(const Tokenizer& tok, const std::vector<int64_t>& prompt, const std::vector<int64_t>& generated) {
  std::string text;
  int64_t prev = -1;
  std::vector<int64_t> all = prompt;
  all.insert(all.end(), generated.begin(), generated.end());
  for (int64_t id : all) {
    text += prev < 0 && id == tok.bos() ? "" : tok.decodeStep(prev < 0 ? tok.bos() : prev, id);
    prev = id;
  }
  return text;
}

}  // namespace headlab
