#include "headlab/core/hooked_transformer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "headlab/core/errors.h"

namespace headlab {

namespace {
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

at::Tensor activate(const at::Tensor& x, Activation a) {
  switch (a) {
    case Activation::GeluNew: return at::gelu(x, "tanh");
    case Activation::Gelu: return at::gelu(x);
    case Activation::Silu: return at::silu(x);
    case Activation::Relu: return at::relu(x);
    case Activation::QuickGelu: return x * at::sigmoid(1.702 * x);
  }
  return x;
}
}  // namespace

HookedTransformer::HookedTransformer(ModelConfig config, ModelWeights weights)
    : m_config(std::move(config)), m_weights(std::move(weights)), m_hooks(m_config.n_layers) {
  m_config.validate("model");
  validateWeights(m_config, m_weights, "model");
  if (m_config.rope != RopeLayout::None) growRopeTables(std::min<int64_t>(m_config.n_ctx, kInitialRopePositions));
}

void HookedTransformer::growRopeTables(int64_t positions) const {
  // float32 arithmetic on purpose: llama2.c and Hugging Face both build these tables in float32.
  // Each position's row depends only on the position, so growing the table never changes a row.
  // Grown on demand (doubling, capped at n_ctx): a 1M-token max_position_embeddings costs nothing
  // until a prompt that long runs.
  const int64_t have = m_ropeCos.defined() ? m_ropeCos.size(0) : 0;
  if (positions <= have) return;
  positions = std::min(m_config.n_ctx, std::max(positions, 2 * have));
  std::tie(m_ropeCos, m_ropeSin) = ropeTables(positions, false);
  if (m_config.rope_local_theta > 0) std::tie(m_ropeLocalCos, m_ropeLocalSin) = ropeTables(positions, true);
}

std::pair<at::Tensor, at::Tensor> HookedTransformer::ropeTables(int64_t positions, bool local, int64_t length) const {
  const int64_t half = m_config.rotaryDim() / 2;
  std::vector<float> cosv(positions * half), sinv(positions * half);
  const std::vector<float> inverseFrequencies = ropeInverseFrequencies(m_config, local, length);
  // YaRN and LongRope scale cos and sin (so q.k by its square); 1 for every other rope type and for local tables.
  const float scale = local && m_config.rope_local_theta > 0 ? 1.0f : static_cast<float>(m_config.rope_scaling.attention_factor);
  for (int64_t i = 0; i < half; ++i) {
    const float freq = inverseFrequencies[i];
    for (int64_t p = 0; p < positions; ++p) {
      float angle = static_cast<float>(p) * freq;
      cosv[p * half + i] = scale == 1.0f ? std::cos(angle) : std::cos(angle) * scale;
      sinv[p * half + i] = scale == 1.0f ? std::sin(angle) : std::sin(angle) * scale;
    }
  }
  return {at::from_blob(cosv.data(), {positions, half}, at::kFloat).clone().to(device()),
          at::from_blob(sinv.data(), {positions, half}, at::kFloat).clone().to(device())};
}

void HookedTransformer::to(at::Device dev, at::ScalarType dtype) {
  m_weights = weightsTo(m_weights, dev, dtype);
  for (at::Tensor* t : {&m_ropeCos, &m_ropeSin, &m_ropeLocalCos, &m_ropeLocalSin})
    if (t->defined()) *t = t->to(dev);
}

void HookedTransformer::checkTokens(const at::Tensor& tokens, int64_t posOffset) const {
  if (tokens.dim() != 2)
    throw InputError("tokens must be [batch, pos], got " + std::to_string(tokens.dim()) + " dims");
  if (tokens.size(0) == 0 || tokens.size(1) == 0) throw InputError("empty prompt: no tokens to run");
  if (posOffset + tokens.size(1) > m_config.n_ctx)
    throw InputError("prompt of " + std::to_string(posOffset + tokens.size(1)) +
                     " tokens is longer than the model's context of " + std::to_string(m_config.n_ctx));
  int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
  if (lo < 0 || hi >= m_config.d_vocab)
    throw InputError("token id " + std::to_string(lo < 0 ? lo : hi) + " out of range [0, " +
                     std::to_string(m_config.d_vocab) + ")");
}

at::Tensor HookedTransformer::norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const {
  if (!w.defined() && !b.defined()) return x;  // a model without this norm (OLMo-2 has no pre-norms)
  const double eps = m_config.norm_eps;
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor y;
  if (m_config.norm == NormKind::LayerNorm) {
    y = at::layer_norm(xf, {x.size(-1)}, w.to(at::kFloat), b.defined() ? b.to(at::kFloat) : at::Tensor(), eps);
  } else {
    // Gemma's scale 1 + w is formed in float32 from the stored w, as transformers does in any dtype.
    const at::Tensor scale = m_config.norm_weight_offset != 0 ? w.to(at::kFloat) + m_config.norm_weight_offset : w.to(at::kFloat);
    y = xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps) * scale;
  }
  return y.to(x.scalar_type());
}

at::Tensor HookedTransformer::rope(const at::Tensor& x, int64_t posOffset, bool local, int64_t lengthIn) const {
  // x [batch, pos, head, d_head]; rotate the first rotary_dim features of each head.
  const int64_t T = x.size(1), rot = m_config.rotaryDim(), half = rot / 2;
  growRopeTables(posOffset + T);
  const bool ownLocal = local && m_config.rope_local_theta > 0;
  at::Tensor cosTable = ownLocal ? m_ropeLocalCos : m_ropeCos, sinTable = ownLocal ? m_ropeLocalSin : m_ropeSin;
  const RopeScaling& scaling = m_config.rope_scaling;
  const int64_t length = lengthIn > 0 ? lengthIn : posOffset + T;
  if (!ownLocal && scaling.dependsOnLength() && length > scaling.original_max_positions) {
    // Dynamic / LongRope past the original context: this forward's frequencies follow its length, as
    // transformers' rotary module recomputes them per call; keys already in a KV cache keep theirs.
    std::tie(cosTable, sinTable) = ropeTables(length, false, length);
  }
  at::Tensor c = cosTable.slice(0, posOffset, posOffset + T).view({1, T, 1, half}).to(x.scalar_type());
  at::Tensor s = sinTable.slice(0, posOffset, posOffset + T).view({1, T, 1, half}).to(x.scalar_type());
  at::Tensor xr = x.slice(-1, 0, rot);
  at::Tensor out;
  if (m_config.rope == RopeLayout::Interleaved) {
    at::Tensor pairs = xr.unflatten(-1, {half, 2});  // [..., half, 2]
    at::Tensor x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
    out = at::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).flatten(-2);
  } else {
    at::Tensor x0 = xr.slice(-1, 0, half), x1 = xr.slice(-1, half, rot);
    out = at::cat({x0 * c - x1 * s, x1 * c + x0 * s}, -1);
  }
  if (rot < x.size(-1)) out = at::cat({out, x.slice(-1, rot)}, -1);
  return out;
}

at::Tensor HookedTransformer::embed(const at::Tensor& tokensIn, int64_t posOffset) {
  at::Tensor tokens = tokensIn.to(device(), at::kLong);
  at::Tensor resid = at::embedding(m_weights.embed, tokens);  // [batch, pos, d_model]
  if (m_config.embed_scale != 1.0) resid = resid * m_config.embed_scale;  // Gemma: sqrt(d_model), in the model's dtype
  hook(m_hooks.idOf(GlobalHook::Embed), resid, posOffset);
  if (m_config.learned_pos) {
    at::Tensor pos = m_weights.pos_embed.slice(0, posOffset, posOffset + tokens.size(1))
                         .unsqueeze(0)
                         .expand({tokens.size(0), -1, -1});
    hook(m_hooks.idOf(GlobalHook::PosEmbed), pos, posOffset);
    resid = resid + pos;
  }
  return resid;
}

const char* attentionImplName(AttentionImpl impl) {
  switch (impl) {
    case AttentionImpl::Auto: return "auto";
    case AttentionImpl::Explicit: return "explicit";
    case AttentionImpl::Blockwise: return "blockwise";
  }
  return "auto";
}

std::string HookedTransformer::lastAttentionImpl() const {
  if (m_ranBlockwise && m_ranExplicit) return "explicit+blockwise";
  return m_ranBlockwise ? "blockwise" : "explicit";
}

std::string HookedTransformer::attentionUsed() const {
  if (m_everBlockwise && m_everExplicit) return "explicit+blockwise";
  return m_everBlockwise ? "blockwise" : m_everExplicit ? "explicit" : "";
}

double HookedTransformer::attentionScale() const {
  return m_config.attn_scale > 0 ? m_config.attn_scale : 1.0 / std::sqrt(static_cast<double>(m_config.d_head));
}

at::Tensor HookedTransformer::qkNorm(int l, const at::Tensor& t, bool query) const {
  const auto& w = m_weights.layers[l];
  const at::Tensor& nw = query ? w.q_norm_w : w.k_norm_w;
  if (m_config.qk_norm == QkNorm::PerHead) return norm(t, nw, at::Tensor());
  if (m_config.qk_norm == QkNorm::Projection) {
    const auto s = t.sizes();
    return norm(t.reshape({s[0], s[1], s[2] * s[3]}), nw, at::Tensor()).view(s);
  }
  return t;
}

at::Tensor HookedTransformer::projectHeads(int l, const at::Tensor& x, int64_t off, int64_t length, bool query) const {
  const auto& w = m_weights.layers[l];
  const int64_t heads = query ? m_config.n_heads : m_config.n_kv_heads;
  at::Tensor t = linear(x, query ? w.wq : w.wk, query ? w.bq : w.bk).view({x.size(0), x.size(1), heads, m_config.d_head});
  t = qkNorm(l, t, query);
  return m_config.rope == RopeLayout::None ? t : rope(t, off, m_config.slidingWindowAt(l) > 0, length);
}

at::Tensor HookedTransformer::maskBlock(int64_t q0, int64_t q1, int64_t k0, int64_t k1, int64_t window, const at::TensorOptions& o) const {
  // Nothing to mask when every key precedes every query (causal) and sits inside every query's window.
  const bool causalCut = m_config.causal && k1 - 1 > q0;
  const bool windowCut = window > 0 && (q1 - 1) - k0 >= window;
  if (!causalCut && !windowCut) return {};
  const auto lo = at::TensorOptions().dtype(at::kLong).device(o.device());
  at::Tensor qpos = at::arange(q0, q1, lo).unsqueeze(1), kpos = at::arange(k0, k1, lo).unsqueeze(0);
  at::Tensor masked = m_config.causal ? kpos > qpos : at::zeros({q1 - q0, k1 - k0}, lo.dtype(at::kBool));
  if (window > 0) masked = masked.logical_or(qpos - kpos >= window);
  return at::zeros(masked.sizes(), o).masked_fill_(masked, -std::numeric_limits<double>::infinity());
}

std::pair<at::Tensor, at::Tensor> HookedTransformer::blockwiseAttention(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& vt,
                                                                        int64_t qOff, int64_t window) const {
  // q [B, H, T, dh] (scaled), kt / vt [B, Hkv, S, dh]. Query head h reads kv head h / G, as in the
  // explicit path: each group's query rows are folded into one [G * rows, dh] matrix per kv head.
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), dh = q.size(3), Hkv = kt.size(1), S = kt.size(2), G = H / Hkv;
  const int64_t keyBlock = m_blockwise.keyBlock > 0 ? m_blockwise.keyBlock : std::min<int64_t>(S, 4096);
  // The score block, its exponentials and its mask are the float32 temporaries the budget bounds.
  const int64_t queryBlock = m_blockwise.queryBlock > 0 ? m_blockwise.queryBlock
                                                        : std::max<int64_t>(1, m_blockwise.budgetBytes / (B * H * keyBlock * 4 * 3));
  const auto f32 = q.options().dtype(at::kFloat);
  at::Tensor z = at::empty({B, Hkv, G, T, dh}, f32), lse = at::empty({B, Hkv, G, T}, f32);
  const at::Tensor qg = q.reshape({B, Hkv, G, T, dh});
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t q0 = 0; q0 < T; q0 += queryBlock) {
    const int64_t q1 = std::min(T, q0 + queryBlock), n = q1 - q0, a0 = qOff + q0, a1 = qOff + q1;  // a: absolute positions
    const at::Tensor qb = qg.slice(3, q0, q1).reshape({B, Hkv, G * n, dh});
    const int64_t kHi = m_config.causal ? std::min(S, a1) : S, kLo = window > 0 ? std::max<int64_t>(0, a0 - window + 1) : 0;
    at::Tensor m = at::full({B, Hkv, G * n}, -inf, f32), sum = at::zeros({B, Hkv, G * n}, f32), acc = at::zeros({B, Hkv, G * n, dh}, f32);
    for (int64_t k0 = kLo; k0 < kHi; k0 += keyBlock) {
      const int64_t k1 = std::min(kHi, k0 + keyBlock);
      at::Tensor s = at::matmul(qb, kt.slice(2, k0, k1).transpose(-1, -2));  // [B, Hkv, G*n, keys], the model's dtype
      if (m_config.attn_softcap > 0) s = at::tanh(s / m_config.attn_softcap) * m_config.attn_softcap;
      s = s.to(at::kFloat);  // a fresh tensor either way: the in-place steps below touch nothing else
      const at::Tensor mask = maskBlock(a0, a1, k0, k1, window, f32);
      if (mask.defined()) s.add_(G > 1 ? mask.repeat({G, 1}) : mask);
      const at::Tensor mNew = at::maximum(m, s.amax(-1));
      // A row with every key of the block masked keeps -inf as its max: shift by 0 there (exp(-inf) = 0).
      const at::Tensor shift = mNew.masked_fill(mNew == -inf, 0);
      s.sub_(shift.unsqueeze(-1)).exp_();  // the block's unnormalised weights
      const at::Tensor rescale = at::exp(m - shift);
      sum.mul_(rescale).add_(s.sum(-1));
      acc.mul_(rescale.unsqueeze(-1)).add_(at::matmul(s.to(vt.scalar_type()), vt.slice(2, k0, k1)).to(at::kFloat));
      m = mNew;
    }
    z.slice(3, q0, q1).copy_((acc / sum.unsqueeze(-1)).view({B, Hkv, G, n, dh}));
    lse.slice(3, q0, q1).copy_((m + at::log(sum)).view({B, Hkv, G, n}));
  }
  return {z.view({B, H, T, dh}), lse.view({B, H, T})};
}

at::Tensor HookedTransformer::attention(int l, const at::Tensor& x, KvCache* cache, int64_t off, bool lastRowOnly) {
  const auto& w = m_weights.layers[l];
  const int64_t B = x.size(0), Tk = x.size(1), T = lastRowOnly ? 1 : Tk;
  const int64_t H = m_config.n_heads, Hkv = m_config.n_kv_heads, dh = m_config.d_head, G = H / Hkv;
  const int64_t qOff = lastRowOnly ? off + Tk - 1 : off;  // absolute position of the first query row
  auto id = [&](LayerHook h) { return m_hooks.idOf(l, h); };

  // The hook points run in the order Q, K, V, then the rotated Q and K, whichever path follows.
  at::Tensor q = linear(lastRowOnly ? x.slice(1, Tk - 1) : x, w.wq, w.bq).view({B, T, H, dh});
  at::Tensor k = linear(x, w.wk, w.bk).view({B, Tk, Hkv, dh});
  at::Tensor v = linear(x, w.wv, w.bv).view({B, Tk, Hkv, dh});
  hook(id(LayerHook::Q), q, qOff);
  hook(id(LayerHook::K), k, off);
  hook(id(LayerHook::V), v, off);
  q = qkNorm(l, q, true);
  k = qkNorm(l, k, false);
  const int64_t window = m_config.slidingWindowAt(l);
  if (m_config.rope != RopeLayout::None) {
    q = rope(q, qOff, window > 0);
    k = rope(k, off, window > 0);
    hook(id(LayerHook::RotQ), q, qOff);
    hook(id(LayerHook::RotK), k, off);
  }
  at::Tensor kt = k.transpose(1, 2), vt = v.transpose(1, 2);  // [batch, kv_head, pos, d_head]
  if (cache) {
    if (static_cast<int64_t>(cache->k.size()) <= l) cache->k.resize(l + 1), cache->v.resize(l + 1);
    if (cache->k[l].defined()) {
      kt = at::cat({cache->k[l], kt}, 2);
      vt = at::cat({cache->v[l], vt}, 2);
    }
    cache->k[l] = kt, cache->v[l] = vt;
  }
  const int64_t S = kt.size(2);
  // The 1/sqrt(d_head) scale goes on q ([.., T, dh]) rather than on the scores ([.., T, S]).
  const at::Tensor qs = q.transpose(1, 2) * attentionScale();  // [B, H, T, dh]
  const bool patternHooked = m_hooks.hasHooks(id(LayerHook::AttnScores)) || m_hooks.hasHooks(id(LayerHook::Pattern));
  const bool large = static_cast<double>(B) * H * T * S * 4 > static_cast<double>(kAutoBlockwiseBytes);
  const bool blockwise = !patternHooked && (m_attnImpl == AttentionImpl::Blockwise || (m_attnImpl == AttentionImpl::Auto && large));
  at::Tensor z;  // [batch, pos, head, d_head]
  if (blockwise) {
    m_ranBlockwise = m_everBlockwise = true;
    auto [zb, lse] = blockwiseAttention(qs, kt, vt, qOff, window);
    if (m_rowStats) m_rowStats->logSumExp.resize(m_config.n_layers), m_rowStats->logSumExp[l] = lse;
    z = zb.to(x.scalar_type()).transpose(1, 2).contiguous();
  } else {
    m_ranExplicit = m_everExplicit = true;
    // Fold each group's query rows into one matrix ([B, Hkv, G*T, dh]) instead of copying keys.
    // Plain 4-D products: a broadcast 5-D matmul takes ATen's slow per-matrix path (twice the time
    // of the whole attention, forward and backward).
    at::Tensor scores = at::matmul(qs.reshape({B, Hkv, G * T, dh}), kt.transpose(-1, -2)).view({B, H, T, S});
    if (m_config.attn_softcap > 0) scores = at::tanh(scores / m_config.attn_softcap) * m_config.attn_softcap;
    // An additive [q, k] mask: broadcasting an add is ~8x faster on CPU than masked_fill over
    // [batch, head, q, k], forward and backward.
    const at::Tensor additive = maskBlock(qOff, qOff + T, 0, S, window, scores.options());
    if (additive.defined()) scores = scores + additive;
    hook(id(LayerHook::AttnScores), scores, qOff);
    if (m_rowStats) m_rowStats->logSumExp.resize(m_config.n_layers), m_rowStats->logSumExp[l] = at::logsumexp(scores.to(at::kFloat), -1);
    at::Tensor pattern = at::softmax(scores.to(at::kFloat), -1).to(x.scalar_type());  // [batch, head, q, k]
    hook(id(LayerHook::Pattern), pattern, qOff);
    z = at::matmul(pattern.reshape({B, Hkv, G * T, S}), vt)  // [B, Hkv, G*T, dh]
            .view({B, H, T, dh})
            .transpose(1, 2)
            .contiguous();
  }
  hook(id(LayerHook::Z), z, qOff);
  at::Tensor out = linear(z.view({B, T, H * dh}), w.wo, w.bo);
  if (m_hooks.hasHooks(id(LayerHook::Result))) {
    // Per-head contribution to the residual stream: [batch, pos, head, d_model].
    at::Tensor woHeads = w.wo.view({m_config.d_model, H, dh}).permute({1, 2, 0});  // [head, d_head, d_model]
    at::Tensor result = at::einsum("bphd,hdm->bphm", {z, woHeads});
    at::Tensor original = result, snapshot = result.clone();
    hook(id(LayerHook::Result), result, qOff);
    // Only a hook that replaced or edited the heads changes the output; read-only hooks keep the
    // fused product so idle hooks stay bit-identical to the plain forward.
    if (!result.is_same(original) || !at::equal(original, snapshot)) {
      out = result.sum(2);
      if (w.bo.defined()) out = out + w.bo;
    }
  }
  return out;
}

at::Tensor HookedTransformer::scoresTile(int l, const at::Tensor& residPre, const std::vector<int64_t>& headsIn, int64_t r0, int64_t r1,
                                         int64_t c0, int64_t c1) const {
  if (l < 0 || l >= m_config.n_layers)
    throw InputError("layer " + std::to_string(l) + " out of range [0, " + std::to_string(m_config.n_layers) + ")");
  const int64_t length = residPre.size(1);
  if (r0 < 0 || r1 > length || r0 >= r1 || c0 < 0 || c1 > length || c0 >= c1)
    throw InputError("attention tile rows " + std::to_string(r0) + ":" + std::to_string(r1) + ", columns " + std::to_string(c0) + ":" +
                     std::to_string(c1) + " outside the prompt's " + std::to_string(length) + " positions (or empty)");
  std::vector<int64_t> heads = headsIn;
  if (heads.empty())
    for (int64_t h = 0; h < m_config.n_heads; ++h) heads.push_back(h);
  const int64_t G = m_config.n_heads / m_config.n_kv_heads;
  std::vector<int64_t> kvHeads;
  for (int64_t h : heads) {
    if (h < 0 || h >= m_config.n_heads)
      throw InputError("head " + std::to_string(h) + " out of range [0, " + std::to_string(m_config.n_heads) + ")");
    kvHeads.push_back(h / G);  // GQA: query head h reads kv head h / G
  }
  const auto& w = m_weights.layers[l];
  const at::Tensor xq = norm(residPre.slice(1, r0, r1), w.ln1_w, w.ln1_b), xk = norm(residPre.slice(1, c0, c1), w.ln1_w, w.ln1_b);
  const auto index = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(residPre.device()); };
  at::Tensor q = (projectHeads(l, xq, r0, length, true).transpose(1, 2) * attentionScale()).index_select(1, index(heads));  // [B, h, rows, dh]
  at::Tensor k = projectHeads(l, xk, c0, length, false).transpose(1, 2).index_select(1, index(kvHeads));                       // [B, h, cols, dh]
  at::Tensor s = at::matmul(q, k.transpose(-1, -2));
  if (m_config.attn_softcap > 0) s = at::tanh(s / m_config.attn_softcap) * m_config.attn_softcap;
  s = s.to(at::kFloat);
  const at::Tensor mask = maskBlock(r0, r1, c0, c1, m_config.slidingWindowAt(l), s.options());
  return mask.defined() ? s + mask : s;
}

at::Tensor HookedTransformer::mlp(int l, const at::Tensor& x, int64_t off) {
  const auto& w = m_weights.layers[l];
  auto id = [&](LayerHook h) { return m_hooks.idOf(l, h); };
  at::Tensor post;
  if (m_config.gated_mlp) {
    at::Tensor pre = linear(x, w.w_gate, at::Tensor());
    hook(id(LayerHook::MlpPre), pre, off);
    at::Tensor preLinear = linear(x, w.w_in, w.b_in);
    hook(id(LayerHook::MlpPreLinear), preLinear, off);
    post = activate(pre, m_config.act) * preLinear;
  } else {
    at::Tensor pre = linear(x, w.w_in, w.b_in);
    hook(id(LayerHook::MlpPre), pre, off);
    post = activate(pre, m_config.act);
  }
  hook(id(LayerHook::MlpPost), post, off);
  return linear(post, w.w_out, w.b_out);
}

at::Tensor HookedTransformer::block(int l, const at::Tensor& residPre, KvCache* cache, int64_t off, bool lastRowOnly) {
  if (l < 0 || l >= m_config.n_layers)
    throw InputError("layer " + std::to_string(l) + " out of range [0, " + std::to_string(m_config.n_layers) + ")");
  const auto& w = m_weights.layers[l];
  auto id = [&](LayerHook h) { return m_hooks.idOf(l, h); };
  // With lastRowOnly, keys and values come from every row but everything after attention runs for
  // the last row alone, which sits at absolute position rowOff.
  const int64_t rowOff = lastRowOnly ? off + residPre.size(1) - 1 : off;
  at::Tensor resid = residPre;
  hook(id(LayerHook::ResidPre), resid, off);
  at::Tensor x = norm(resid, w.ln1_w, w.ln1_b);
  hook(id(LayerHook::Ln1Normalized), x, off);
  at::Tensor attnOut = attention(l, x, cache, off, lastRowOnly);  // [batch, rows, d_model]
  if (m_config.post_norms) attnOut = norm(attnOut, w.attn_post_w, at::Tensor());
  hook(id(LayerHook::AttnOut), attnOut, rowOff);
  at::Tensor rows = lastRowOnly ? resid.slice(1, resid.size(1) - 1) : resid;
  // Parallel residual (GPT-NeoX): the MLP reads resid_pre, and there is no resid_mid.
  at::Tensor residMid = rows + attnOut;
  if (!m_config.parallel_residual) hook(id(LayerHook::ResidMid), residMid, rowOff);
  at::Tensor x2 = norm(m_config.parallel_residual ? rows : residMid, w.ln2_w, w.ln2_b);
  hook(id(LayerHook::Ln2Normalized), x2, rowOff);
  at::Tensor mlpOut = mlp(l, x2, rowOff);
  if (m_config.post_norms) mlpOut = norm(mlpOut, w.mlp_post_w, at::Tensor());
  hook(id(LayerHook::MlpOut), mlpOut, rowOff);
  at::Tensor residPost = residMid + mlpOut;
  hook(id(LayerHook::ResidPost), residPost, rowOff);
  return residPost;
}

at::Tensor HookedTransformer::unembed(const at::Tensor& resid) {
  at::Tensor x = norm(resid, m_weights.lnf_w, m_weights.lnf_b);
  hook(m_hooks.idOf(GlobalHook::LnFinal), x);
  at::Tensor logits = linear(x, m_weights.unembed, m_weights.unembed_b);
  if (m_config.final_softcap > 0) logits = at::tanh(logits / m_config.final_softcap) * m_config.final_softcap;  // Gemma 2
  return logits;
}

std::string HookedTransformer::firstNonFiniteHook(const at::Tensor& tokens) {
  std::string first;
  std::vector<HookHandle> hs;
  for (size_t id = 0; id < m_hooks.names().size(); ++id)
    hs.push_back(m_hooks.add(static_cast<int>(id), [&first](at::Tensor& a, const HookContext& ctx) {
      if (first.empty() && a.is_floating_point() && !at::isfinite(a.masked_fill(at::isinf(a) & (a < 0), 0)).all().item<bool>())
        first = *ctx.name;
    }));
  forward(tokens);
  return first;
}

void HookedTransformer::requireFinite(const at::Tensor& logits, const at::Tensor& tokens) {
  if (at::isfinite(logits).all().item<bool>()) return;
  const std::string where = firstNonFiniteHook(tokens);
  throw NumericError("non-finite values (NaN or Inf) in the logits; they first appear at " +
                     (where.empty() ? std::string("the unembedding") : where) + " (check the weights feeding it)");
}

at::Tensor HookedTransformer::forward(const at::Tensor& tokens, KvCache* cache) {
  const int64_t off = cache ? cache->length : 0;
  checkTokens(tokens, off);
  m_ranExplicit = m_ranBlockwise = false;
  at::Tensor resid = embed(tokens, off);
  for (int l = 0; l < m_config.n_layers; ++l) resid = block(l, resid, cache, off);
  if (cache) cache->length += tokens.size(1);
  return unembed(resid);
}

at::Tensor HookedTransformer::forwardFrom(int fromLayer, const at::Tensor& residPre, bool lastPositionOnly) {
  if (residPre.dim() == 3 && residPre.size(1) > m_config.n_ctx)
    throw InputError("sequence of " + std::to_string(residPre.size(1)) + " positions is longer than the model's context (" +
                     std::to_string(m_config.n_ctx) + ")");
  at::Tensor resid = residPre;
  m_ranExplicit = m_ranBlockwise = false;
  const int last = static_cast<int>(m_config.n_layers) - 1;
  // With only the next-token prediction wanted, the final block runs for the last row alone
  // (unless it is the layer being restarted from, whose hooks expect full-length activations).
  const bool shortcut = lastPositionOnly && fromLayer < last;
  for (int l = fromLayer; l <= last; ++l) resid = block(l, resid, nullptr, 0, shortcut && l == last);
  return unembed(lastPositionOnly ? resid.slice(1, resid.size(1) - 1) : resid);
}

}  // namespace headlab
