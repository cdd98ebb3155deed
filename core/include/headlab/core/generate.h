// Greedy and sampled decoding with a KV cache. Hooks stay live: during decoding each hook sees
// the rows of the new position only (HookContext::posOffset tells which).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace headlab {

class HookedTransformer;
class Tokenizer;

struct GenerateOptions {
  int64_t maxNewTokens = 64;
  bool greedy = true;
  double temperature = 1.0;
  double topP = 1.0;
  uint64_t seed = 0;
  bool stopAtEos = true;   // also stops at BOS, as llama2.c does
  std::function<bool(int64_t token)> onToken;  // return false to stop
};

// Returns the new token ids (prompt excluded). Throws InputError on an empty prompt.
std::vector<int64_t> generate(HookedTransformer& model, const std::vector<int64_t>& prompt, const GenerateOptions& opt,
                              int64_t bos = -1, int64_t eos = -1);

// The same decoding from a prompt given as layer-0 residual embeddings [1, pos, d_model] (a text
// prompt with an image's tokens spliced in: VlmInput::embeds), with a KV cache: the prompt runs once,
// then one position per new token. Throws InputError on a wrong shape, an empty or too long prompt.
std::vector<int64_t> generateFromEmbeddings(HookedTransformer& model, const at::Tensor& promptEmbeds, const GenerateOptions& opt,
                                            int64_t bos = -1, int64_t eos = -1);

// Prompt text followed by the continuation, as llama2.c prints it.
std::string renderGeneration(const Tokenizer& tok, const std::vector<int64_t>& prompt, const std::vector<int64_t>& generated);

}  // namespace headlab
