#include "headlab/core/model_weights.h"

#include <ATen/ATen.h>

#include "headlab/core/errors.h"
#include "headlab/core/model_config.h"
#include "headlab/core/tensor_store.h"

namespace headlab {

namespace {
void expectShape(const at::Tensor& t, std::vector<int64_t> shape, const std::string& name, const std::string& where,
                 bool required = true) {
  if (!t.defined()) {
    if (required) throw WeightError(where + ": missing tensor '" + name + "'");
    return;
  }
  if (t.sizes().vec() != shape)
    throw ShapeError(where + ": tensor '" + name + "' has wrong shape; expected " + shapeString(shape) + ", got " +
                     shapeString(t.sizes()));
}

at::Tensor moved(const at::Tensor& t, at::Device d, at::ScalarType s) { return t.defined() ? t.to(d, s) : t; }
}  // namespace

void validateWeights(const ModelConfig& c, const ModelWeights& w, const std::string& where) {
  const int64_t D = c.d_model, q = c.n_heads * c.d_head, kv = c.n_kv_heads * c.d_head, F = c.d_mlp;
  const bool ln = c.norm == NormKind::LayerNorm;
  expectShape(w.embed, {c.d_vocab, D}, "embed", where);
  expectShape(w.unembed, {c.d_vocab, D}, "unembed", where);
  if (c.learned_pos) expectShape(w.pos_embed, {c.n_ctx, D}, "pos_embed", where);
  expectShape(w.lnf_w, {D}, "ln_final.w", where);
  expectShape(w.lnf_b, {D}, "ln_final.b", where, ln);
  if (static_cast<int64_t>(w.layers.size()) != c.n_layers)
    throw ShapeError(where + ": expected " + std::to_string(c.n_layers) + " layers, got " + std::to_string(w.layers.size()));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const auto& L = w.layers[l];
    auto n = [&](const char* s) { return "blocks." + std::to_string(l) + "." + s; };
    expectShape(L.ln1_w, {D}, n("ln1.w"), where, c.pre_norms);
    expectShape(L.ln2_w, {D}, n("ln2.w"), where, c.pre_norms);
    expectShape(L.attn_post_w, {D}, n("ln1_post.w"), where, c.post_norms);
    expectShape(L.mlp_post_w, {D}, n("ln2_post.w"), where, c.post_norms);
    const bool perHead = c.qk_norm == QkNorm::PerHead, qkNorm = c.qk_norm != QkNorm::None;
    expectShape(L.q_norm_w, {perHead ? c.d_head : q}, n("attn.q_ln.w"), where, qkNorm);
    expectShape(L.k_norm_w, {perHead ? c.d_head : kv}, n("attn.k_ln.w"), where, qkNorm);
    expectShape(L.wq, {q, D}, n("attn.W_Q"), where);
    expectShape(L.wk, {kv, D}, n("attn.W_K"), where);
    expectShape(L.wv, {kv, D}, n("attn.W_V"), where);
    expectShape(L.wo, {D, q}, n("attn.W_O"), where);
    expectShape(L.bq, {q}, n("attn.b_Q"), where, false);
    expectShape(L.bk, {kv}, n("attn.b_K"), where, false);
    expectShape(L.bv, {kv}, n("attn.b_V"), where, false);
    expectShape(L.bo, {D}, n("attn.b_O"), where, false);
    expectShape(L.w_in, {F, D}, n("mlp.W_in"), where);
    expectShape(L.w_out, {D, F}, n("mlp.W_out"), where);
    if (c.gated_mlp) expectShape(L.w_gate, {F, D}, n("mlp.W_gate"), where);
  }
}

ModelWeights weightsTo(const ModelWeights& w, at::Device d, at::ScalarType s) {
  ModelWeights o;
  o.embed = moved(w.embed, d, s);
  o.pos_embed = moved(w.pos_embed, d, s);
  o.lnf_w = moved(w.lnf_w, d, s);
  o.lnf_b = moved(w.lnf_b, d, s);
  o.unembed = w.unembed.is_same(w.embed) ? o.embed : moved(w.unembed, d, s);
  o.unembed_b = moved(w.unembed_b, d, s);
  for (const auto& L : w.layers) {
    LayerWeights m;
    std::vector<const at::Tensor*> sources;  // the same fields in the same order
    forEachLayerTensor(L, [&](const char*, const at::Tensor& t) { sources.push_back(&t); });
    size_t i = 0;
    forEachLayerTensor(m, [&](const char*, at::Tensor& t) { t = moved(*sources[i++], d, s); });
    o.layers.push_back(std::move(m));
  }
  return o;
}

}  // namespace headlab
