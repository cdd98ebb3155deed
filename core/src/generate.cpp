#include "headlab/core/generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

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
}  // namespace

std::vector<int64_t> generate(HookedTransformer& model, const std::vector<int64_t>& prompt, const GenerateOptions& opt,
                              int64_t bos, int64_t eos) {
  if (prompt.empty()) throw InputError("empty prompt: nothing to continue");
  c10::InferenceMode guard;
  std::mt19937_64 rng(opt.seed);
  KvCache cache;
  std::vector<int64_t> out;
  at::Tensor input = at::tensor(prompt, at::kLong).unsqueeze(0);
  model.checkTokens(input);  // a prompt longer than the context is an error, not an empty continuation
  // k new tokens need P + k - 1 forwarded positions.
  const int64_t room = model.config().n_ctx + 1 - static_cast<int64_t>(prompt.size());
  const int64_t steps = std::min(opt.maxNewTokens, room);
  for (int64_t i = 0; i < steps; ++i) {
    at::Tensor logits = model.forward(input, &cache);  // [1, pos, d_vocab]
    if (i == 0) model.requireFinite(logits, input);
    int64_t next = sample(logits[0][-1], opt, rng);
    if (opt.stopAtEos && (next == eos || next == bos)) break;
    out.push_back(next);
    if (opt.onToken && !opt.onToken(next)) break;
    input = at::tensor(std::vector<int64_t>{next}, at::kLong).unsqueeze(0);
  }
  return out;
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
