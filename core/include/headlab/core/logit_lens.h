// What each layer already predicts (the logit lens) and which components write the followed token's
// logit (direct logit attribution), for one prompt.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace headlab {

class HookedTransformer;

struct LensOptions {
  int64_t topK = 5;
  std::vector<int64_t> positions;  // empty: every position
  int64_t follow = -1;             // a token id whose probability and rank are reported per layer (-1: none)
};
// The final norm and the unembedding applied to every layer's resid_post (nostalgebraist's logit lens;
// the last layer's row is the model's own prediction). Shapes: [layer, position, k] and [layer, position].
struct LogitLens {
  std::vector<int64_t> positions;
  at::Tensor topIds;                 // int64
  at::Tensor topProbs;               // float32, softmax over the vocabulary
  at::Tensor followProb, followRank; // when LensOptions::follow >= 0 (rank 0 = top-1)
};
LogitLens logitLens(HookedTransformer& model, const std::vector<int64_t>& ids, const LensOptions& options = {});

// Direct logit attribution of logit(target) - logit(wrong) (wrong < 0: logit(target) alone) at `position`:
// every head's output (attn.hook_result) and every MLP's output, read through the final norm with its
// scale frozen at that position (its value in this run), then the unembedding. With the frozen scale
// the parts are exact: embed + heads + MLPs + biases equals the model's logit (difference). Refused
// (InputError) for models where a head's output passes another non-linearity first (post-norms,
// Gemma 2 / OLMo-2) or the logits are soft-capped.
struct LogitAttribution {
  at::Tensor heads;   // [layer, head] float64
  at::Tensor mlps;    // [layer] float64
  double embed = 0;   // token (and learned position) embeddings
  double biases = 0;  // attention output biases, the final norm's bias and the unembedding bias
  double logit = 0;   // the model's own logit (difference) at the position
  double scale = 0;   // the frozen final-norm scale (RMS, or standard deviation for LayerNorm)
};
LogitAttribution directLogitAttribution(HookedTransformer& model, const std::vector<int64_t>& ids, int64_t position, int64_t target,
                                        int64_t wrong = -1);

}  // namespace headlab
