#include "headlab/core/incremental_runner.h"

#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/system_memory.h"
#include "headlab/core/tensor_store.h"

namespace headlab {

IncrementalRunner::IncrementalRunner(HookedTransformer& model, bool capturePatterns)
    : m_model(model), m_capturePatterns(capturePatterns), m_budget(availableMemory() / 4 * 3) {}

uint64_t IncrementalRunner::estimateBytes(const ModelConfig& c, int64_t T) {
  const double square = static_cast<double>(c.n_heads) * T * T * 4;  // one layer's [head, T, T] float32
  const double held = 2 * c.n_layers * square + static_cast<double>(c.n_layers) * T * c.d_model * 4;
  return static_cast<uint64_t>(held + 3 * square);  // scores, mask and softmax of the layer being run
}

int64_t IncrementalRunner::maxPositions(const ModelConfig& c, uint64_t budget) {
  int64_t lo = 0, hi = c.n_ctx;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (estimateBytes(c, mid) <= budget) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

void IncrementalRunner::checkBudget(int64_t T) const {
  if (m_budget == 0 || !m_capturePatterns) return;
  const auto& c = m_model.config();
  const uint64_t need = estimateBytes(c, T);
  if (need <= m_budget) return;
  const auto mb = [](uint64_t b) { return std::to_string(b >> 20) + " MB"; };
  throw InputError("a " + std::to_string(T) + "-token prompt needs about " + mb(need) +
                   " for the window's attention maps (every layer's [heads, T, T], baseline and current), over the " + mb(m_budget) +
                   " it may use here; this model takes up to " + std::to_string(maxPositions(c, m_budget)) +
                   " tokens in the window. Longer prompts: headlab-cli capture --heads/--rows/--cols (tiles computed blockwise)");
}

std::string IncrementalRunner::signature(const std::vector<Intervention>& ivs, int layer) {
  std::string s;
  for (const auto& iv : ivs) {
    if (iv.layer != layer) continue;
    s += iv.describe().dump();
    if (iv.source.defined()) s += "@" + std::to_string(reinterpret_cast<uintptr_t>(iv.source.data_ptr()));
    s += ";";
  }
  return s;
}

void IncrementalRunner::setPrompt(const std::vector<int64_t>& tokens) {
  if (tokens.empty()) throw InputError("empty prompt: nothing to run");
  checkBudget(static_cast<int64_t>(tokens.size()));
  c10::InferenceMode guard;
  const int L = static_cast<int>(m_model.config().n_layers);
  at::Tensor ids = at::tensor(tokens, at::kLong).unsqueeze(0);
  m_model.checkTokens(ids);
  m_tokens = tokens;
  m_residPre.assign(L, at::Tensor());
  m_patterns.assign(L, at::Tensor());
  m_signatures.assign(L, std::string());
  m_residPre[0] = m_model.embed(ids);
  runFrom(0, {});
  m_model.requireFinite(m_logits, ids);
  m_baseline = m_logits;
  m_basePatterns = m_patterns;
}

void IncrementalRunner::setPrompt(const std::vector<int64_t>& tokens, const at::Tensor& embeds) {
  if (tokens.empty()) throw InputError("empty prompt: nothing to run");
  const auto& c = m_model.config();
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (embeds.dim() != 3 || embeds.size(0) != 1 || embeds.size(1) != T || embeds.size(2) != c.d_model)
    throw InputError("prompt embeddings have shape " + shapeString(embeds.sizes()) + ", expected [1, " + std::to_string(T) + ", " +
                     std::to_string(c.d_model) + "]");
  if (T > c.n_ctx)
    throw InputError("prompt of " + std::to_string(T) + " positions is longer than the model's context (" + std::to_string(c.n_ctx) + ")");
  checkBudget(T);
  c10::InferenceMode guard;
  const int L = static_cast<int>(c.n_layers);
  m_tokens = tokens;
  m_residPre.assign(L, at::Tensor());
  m_patterns.assign(L, at::Tensor());
  m_signatures.assign(L, std::string());
  m_residPre[0] = embeds.to(m_model.device(), m_model.dtype());
  runFrom(0, {});
  if (!at::isfinite(m_logits).all().item<bool>())
    throw NumericError("non-finite values (NaN or Inf) in the logits of the image prompt");
  m_baseline = m_logits;
  m_basePatterns = m_patterns;
}

int IncrementalRunner::update(const std::vector<Intervention>& ivs) {
  if (m_tokens.empty()) throw InputError("no prompt set");
  const int L = static_cast<int>(m_model.config().n_layers);
  int start = L;
  for (int l = 0; l < L; ++l)
    if (signature(ivs, l) != m_signatures[l]) {
      start = l;
      break;
    }
  if (start < L) runFrom(start, ivs);
  m_lastStart = start;
  return start;
}

int IncrementalRunner::runFrom(int start, const std::vector<Intervention>& ivs) {
  c10::InferenceMode guard;
  const int L = static_cast<int>(m_model.config().n_layers);
  std::vector<HookHandle> handles = install(m_model, ivs);
  HookRegistry& hooks = m_model.hooks();
  for (int l = start; l < L; ++l) {
    if (m_capturePatterns)
      handles.push_back(hooks.add(hooks.idOf(l, LayerHook::Pattern),
                                  [this, l](at::Tensor& p, const HookContext&) { m_patterns[l] = p[0].clone(); }));
  }
  at::Tensor resid = m_residPre[start];
  for (int l = start; l < L; ++l) {
    m_residPre[l] = resid;
    resid = m_model.block(l, resid);
    m_signatures[l] = signature(ivs, l);
  }
  // Only the next-token prediction is shown: unembedding one row instead of [pos, d_vocab].
  m_logits = m_model.unembed(resid.slice(1, resid.size(1) - 1))[0];
  m_lastStart = start;
  return start;
}

}  // namespace headlab
