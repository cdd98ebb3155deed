// Canonical weights of a decoder-only transformer, whatever file they came from.
// Linear weights keep the PyTorch nn.Linear orientation [out, in]; absent biases are undefined.
#pragma once
#include <ATen/Tensor.h>

#include <vector>

namespace headlab {

struct LayerWeights {
  at::Tensor ln1_w, ln1_b;   // [d_model]
  at::Tensor wq, bq;         // [n_heads * d_head, d_model], [n_heads * d_head]
  at::Tensor wk, bk;         // [n_kv_heads * d_head, d_model]
  at::Tensor wv, bv;         // [n_kv_heads * d_head, d_model]
  at::Tensor wo, bo;         // [d_model, n_heads * d_head], [d_model]
  at::Tensor ln2_w, ln2_b;   // [d_model]
  at::Tensor w_gate;         // [d_mlp, d_model] (gated MLPs: llama w1 / gate_proj)
  at::Tensor w_in, b_in;     // [d_mlp, d_model] (llama w3 / up_proj; GPT-2 c_fc)
  at::Tensor w_out, b_out;   // [d_model, d_mlp] (llama w2 / down_proj; GPT-2 c_proj)
  at::Tensor attn_post_w;    // [d_model] RMSNorm of the attention output (post_norms)
  at::Tensor mlp_post_w;     // [d_model] RMSNorm of the MLP output (post_norms)
  at::Tensor q_norm_w, k_norm_w;  // [d_head] (QkNorm::PerHead) or [n_heads * d_head] / [n_kv_heads * d_head] (Projection)
};

// Every tensor of a layer with its TransformerLens name, in one list: device moves, copies and
// parameter walks go through it, so a new field is one line here (plus its shape in validateWeights).
template <typename Layer, typename Fn>  // Layer: LayerWeights or const LayerWeights
void forEachLayerTensor(Layer& L, Fn&& fn) {
  fn("ln1.w", L.ln1_w), fn("ln1.b", L.ln1_b), fn("attn.W_Q", L.wq), fn("attn.b_Q", L.bq), fn("attn.W_K", L.wk);
  fn("attn.b_K", L.bk), fn("attn.W_V", L.wv), fn("attn.b_V", L.bv), fn("attn.W_O", L.wo), fn("attn.b_O", L.bo);
  fn("ln2.w", L.ln2_w), fn("ln2.b", L.ln2_b), fn("mlp.W_gate", L.w_gate), fn("mlp.W_in", L.w_in), fn("mlp.b_in", L.b_in);
  fn("mlp.W_out", L.w_out), fn("mlp.b_out", L.b_out), fn("ln1_post.w", L.attn_post_w), fn("ln2_post.w", L.mlp_post_w);
  fn("attn.q_ln.w", L.q_norm_w), fn("attn.k_ln.w", L.k_norm_w);
}

// The layer's defined tensors, in forEachLayerTensor's order (a trainer's parameter list).
inline std::vector<at::Tensor*> definedLayerTensors(LayerWeights& L) {
  std::vector<at::Tensor*> out;
  forEachLayerTensor(L, [&out](const char*, at::Tensor& t) {
    if (t.defined()) out.push_back(&t);
  });
  return out;
}

struct ModelWeights {
  at::Tensor embed;          // [d_vocab, d_model]
  at::Tensor pos_embed;      // [n_ctx, d_model] (learned positions only)
  at::Tensor lnf_w, lnf_b;   // [d_model]
  at::Tensor unembed;        // [d_vocab, d_model] (same storage as embed when tied)
  at::Tensor unembed_b;      // [d_vocab] (rare)
  std::vector<LayerWeights> layers;
};

struct ModelConfig;
// Checks every tensor's shape against the config. Throws ShapeError naming the tensor,
// the expected and the actual shape.
void validateWeights(const ModelConfig& config, const ModelWeights& w, const std::string& where);
// Moves and casts every tensor (float dtypes only).
ModelWeights weightsTo(const ModelWeights& w, at::Device device, at::ScalarType dtype);

}  // namespace headlab
