// The weight reader shared by the RMSNorm / RoPE / gated-MLP decoders (LLaMA, Mistral, Qwen2/3,
// OLMo-2, Gemma, Phi-3): each family gives its tensor-name table, this reads it.
#include <ATen/ATen.h>

#include "architectures.h"

namespace headlab::arch {

std::string atLayer(const std::string& pattern, int64_t layer) {
  std::string s(pattern);
  auto pos = s.find("{}");
  return pos == std::string::npos ? s : s.replace(pos, 2, std::to_string(layer));
}

void readLayerTensors(LayerWeights& L, const TensorStore& st, const std::string& prefix, const std::vector<LayerTensorName>& table,
                      int64_t D, int64_t F, bool transposed) {
  auto size = [&](char unit) { return unit == 'D' ? D : F; };
  for (const auto& t : table) {
    const std::string name = prefix + t.name;
    if (t.in == 0) L.*t.field = st.get(name, {size(t.out)});
    else if (transposed) L.*t.field = st.get(name, {size(t.in), size(t.out)}).t().contiguous();
    else L.*t.field = st.get(name, {size(t.out), size(t.in)});
  }
}

void writeLayerTensors(const LayerWeights& L, const std::string& prefix, const std::vector<LayerTensorName>& table, TensorMap& out,
                       bool transposed) {
  for (const auto& t : table) out[prefix + t.name] = transposed && t.in != 0 ? (L.*t.field).t().contiguous() : L.*t.field;
}

DecoderNames hfDecoderNames() {
  DecoderNames n;
  n.embed = "model.embed_tokens.weight", n.finalNorm = "model.norm.weight", n.output = "lm_head.weight";
  const std::string p = "model.layers.{}.";
  n.ln1 = p + "input_layernorm.weight", n.ln2 = p + "post_attention_layernorm.weight";
  n.q = p + "self_attn.q_proj.weight", n.k = p + "self_attn.k_proj.weight", n.v = p + "self_attn.v_proj.weight";
  n.o = p + "self_attn.o_proj.weight";
  n.qBias = p + "self_attn.q_proj.bias", n.kBias = p + "self_attn.k_proj.bias", n.vBias = p + "self_attn.v_proj.bias";
  n.oBias = p + "self_attn.o_proj.bias";
  n.gate = p + "mlp.gate_proj.weight", n.up = p + "mlp.up_proj.weight", n.down = p + "mlp.down_proj.weight";
  return n;
}

DecoderNames ggufDecoderNames() {
  DecoderNames n;
  n.embed = "token_embd.weight", n.finalNorm = "output_norm.weight", n.output = "output.weight";
  n.ln1 = "blk.{}.attn_norm.weight", n.ln2 = "blk.{}.ffn_norm.weight";
  n.q = "blk.{}.attn_q.weight", n.k = "blk.{}.attn_k.weight", n.v = "blk.{}.attn_v.weight", n.o = "blk.{}.attn_output.weight";
  n.qBias = "blk.{}.attn_q.bias", n.kBias = "blk.{}.attn_k.bias", n.vBias = "blk.{}.attn_v.bias", n.oBias = "blk.{}.attn_output.bias";
  n.gate = "blk.{}.ffn_gate.weight", n.up = "blk.{}.ffn_up.weight", n.down = "blk.{}.ffn_down.weight";
  n.qNorm = "blk.{}.attn_q_norm.weight", n.kNorm = "blk.{}.attn_k_norm.weight";
  n.attnPost = "blk.{}.post_attention_norm.weight", n.mlpPost = "blk.{}.post_ffw_norm.weight";
  return n;
}

namespace {
at::Tensor optionalTensor(const TensorStore& st, const std::string& name, const std::vector<int64_t>& shape) {
  return name.empty() ? at::Tensor() : st.getOptional(name, shape);
}

// A norm scale as stored (Gemma's w; the forward adds ModelConfig::norm_weight_offset in float32).
at::Tensor normScale(const TensorStore& st, const std::string& name, int64_t size) { return st.get(name, {size}); }

void readAttention(LayerWeights& L, const ModelConfig& c, const TensorStore& st, const DecoderNames& n, int64_t l) {
  const int64_t D = c.d_model, q = c.n_heads * c.d_head, kv = c.n_kv_heads * c.d_head;
  if (!n.qkv.empty()) {  // fused rows q | k | v
    auto parts = st.get(atLayer(n.qkv, l), {q + 2 * kv, D}).split_with_sizes({q, kv, kv}, 0);
    L.wq = parts[0].contiguous(), L.wk = parts[1].contiguous(), L.wv = parts[2].contiguous();
  } else {
    L.wq = st.get(atLayer(n.q, l), {q, D});
    L.wk = st.get(atLayer(n.k, l), {kv, D});
    L.wv = st.get(atLayer(n.v, l), {kv, D});
  }
  L.wo = st.get(atLayer(n.o, l), {D, q});
  L.bq = optionalTensor(st, atLayer(n.qBias, l), {q});
  L.bk = optionalTensor(st, atLayer(n.kBias, l), {kv});
  L.bv = optionalTensor(st, atLayer(n.vBias, l), {kv});
  L.bo = optionalTensor(st, atLayer(n.oBias, l), {D});
  if (c.qk_norm != QkNorm::None) {
    const bool perHead = c.qk_norm == QkNorm::PerHead;
    L.q_norm_w = normScale(st, atLayer(n.qNorm, l), perHead ? c.d_head : q);
    L.k_norm_w = normScale(st, atLayer(n.kNorm, l), perHead ? c.d_head : kv);
  }
}

void readMlp(LayerWeights& L, const ModelConfig& c, const TensorStore& st, const DecoderNames& n, int64_t l) {
  const int64_t D = c.d_model, F = c.d_mlp;
  if (!n.gateUp.empty()) {  // fused rows gate | up
    auto parts = st.get(atLayer(n.gateUp, l), {2 * F, D}).split(F, 0);
    L.w_gate = parts[0].contiguous(), L.w_in = parts[1].contiguous();
  } else {
    L.w_gate = st.get(atLayer(n.gate, l), {F, D});
    L.w_in = st.get(atLayer(n.up, l), {F, D});
  }
  L.w_out = st.get(atLayer(n.down, l), {D, F});
}
}  // namespace

ModelWeights loadDecoder(ModelConfig& c, const TensorStore& st, const DecoderNames& n) {
  const int64_t D = c.d_model;
  // A tied matrix may be stored under either name (TinyStories-656K keeps only lm_head.weight, as
  // transformers accepts); an untied config without an output matrix is tied (some exports drop it).
  if (!st.has(n.output)) c.tied_embeddings = true;
  ModelWeights w;
  w.embed = st.get(c.tied_embeddings && !st.has(n.embed) && st.has(n.output) ? n.output : n.embed, {c.d_vocab, D});
  w.lnf_w = normScale(st, n.finalNorm, D);
  w.unembed = c.tied_embeddings ? w.embed : st.get(n.output, {c.d_vocab, D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    if (c.pre_norms) L.ln1_w = normScale(st, atLayer(n.ln1, l), D), L.ln2_w = normScale(st, atLayer(n.ln2, l), D);
    if (c.post_norms)
      L.attn_post_w = normScale(st, atLayer(n.attnPost, l), D), L.mlp_post_w = normScale(st, atLayer(n.mlpPost, l), D);
    readAttention(L, c, st, n, l);
    readMlp(L, c, st, n, l);
    w.layers.push_back(std::move(L));
  }
  return w;
}

TensorMap decoderTensors(const ModelWeights& w, const DecoderNames& n, double normOffset) {
  TensorMap out;
  auto put = [&](const std::string& pattern, int64_t l, const at::Tensor& t) {
    if (!pattern.empty() && t.defined()) out[atLayer(pattern, l)] = t;
  };
  // The scale the forward applies is t + normOffset; a file that stores w of 1 + w gets that minus one.
  const double shift = normOffset - (n.normPlusOne ? 1.0 : 0.0);
  auto scale = [&](const at::Tensor& t) { return shift != 0 && t.defined() ? t + shift : t; };
  out[n.embed] = w.embed;
  out[n.finalNorm] = scale(w.lnf_w);
  if (!w.unembed.is_same(w.embed)) out[n.output] = w.unembed;
  for (int64_t l = 0; l < static_cast<int64_t>(w.layers.size()); ++l) {
    const LayerWeights& L = w.layers[l];
    put(n.ln1, l, scale(L.ln1_w)), put(n.ln2, l, scale(L.ln2_w));
    put(n.attnPost, l, scale(L.attn_post_w)), put(n.mlpPost, l, scale(L.mlp_post_w));
    put(n.qNorm, l, scale(L.q_norm_w)), put(n.kNorm, l, scale(L.k_norm_w));
    if (!n.qkv.empty()) put(n.qkv, l, at::cat({L.wq, L.wk, L.wv}, 0));
    else put(n.q, l, L.wq), put(n.k, l, L.wk), put(n.v, l, L.wv);
    put(n.o, l, L.wo);
    put(n.qBias, l, L.bq), put(n.kBias, l, L.bk), put(n.vBias, l, L.bv), put(n.oBias, l, L.bo);
    if (!n.gateUp.empty()) put(n.gateUp, l, at::cat({L.w_gate, L.w_in}, 0));
    else put(n.gate, l, L.w_gate), put(n.up, l, L.w_in);
    put(n.down, l, L.w_out);
  }
  return out;
}

ModelConfig decoderConfigFromHf(const nlohmann::json& cfg, const std::string& where) {
  ModelConfig c;
  c.arch = require<std::string>(cfg, "model_type", where);
  c.d_model = require<int64_t>(cfg, "hidden_size", where);
  c.d_mlp = require<int64_t>(cfg, "intermediate_size", where);
  c.n_layers = require<int64_t>(cfg, "num_hidden_layers", where);
  c.n_heads = require<int64_t>(cfg, "num_attention_heads", where);
  c.n_kv_heads = optional<int64_t>(cfg, "num_key_value_heads", c.n_heads, where);
  c.d_head = optional<int64_t>(cfg, "head_dim", c.n_heads > 0 ? c.d_model / c.n_heads : 0, where);
  c.d_vocab = require<int64_t>(cfg, "vocab_size", where);
  c.n_ctx = optional<int64_t>(cfg, "max_position_embeddings", 2048, where);
  c.norm = NormKind::RmsNorm;
  c.norm_eps = optional<double>(cfg, "rms_norm_eps", 1e-6, where);
  c.act = Activation::Silu;
  c.gated_mlp = true;
  c.rope = RopeLayout::RotateHalf;
  c.rope_theta = optional<double>(cfg, "rope_theta", 10000.0, where);
  readRopeScalingFromHf(cfg, c, where);
  c.tied_embeddings = optional<bool>(cfg, "tie_word_embeddings", false, where);
  c.bos_token_id = optional<int64_t>(cfg, "bos_token_id", -1, where);
  c.eos_token_id = cfg.contains("eos_token_id") && cfg["eos_token_id"].is_number_integer() ? cfg["eos_token_id"].get<int64_t>() : -1;
  return c;
}

ModelConfig decoderConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  std::string a = require<std::string>(meta, "general.architecture", where);
  auto key = [&](const char* k) { return a + "." + k; };
  const std::string scaling = optional<std::string>(meta, key("rope.scaling.type").c_str(), "none", where);
  // Phi-3's LongRoPE is read by its own reader, from the factor tensors.
  const bool phi3LongRope = a == "phi3" && scaling == "longrope";
  if (scaling != "none" && scaling != "linear" && !phi3LongRope)
    throw ConfigError(where + ": " + key("rope.scaling.type") + " '" + scaling + "' is not implemented (implemented: none, linear)");
  if (a != "phi3" && (store.has("rope_factors_long.weight") || store.has("rope_factors_short.weight")))
    throw ConfigError(where + ": tensors 'rope_factors_long/short.weight' (LongRoPE) are implemented for phi3 only, not " + a);
  if (store.has("rope_freqs.weight"))
    throw ConfigError(where + ": tensor 'rope_freqs.weight' (per-frequency RoPE factors, Llama 3.1 and later) is not implemented");
  ModelConfig c;
  c.arch = a;
  c.d_model = require<int64_t>(meta, key("embedding_length").c_str(), where);
  c.d_mlp = require<int64_t>(meta, key("feed_forward_length").c_str(), where);
  c.n_layers = require<int64_t>(meta, key("block_count").c_str(), where);
  c.n_heads = require<int64_t>(meta, key("attention.head_count").c_str(), where);
  c.n_kv_heads = optional<int64_t>(meta, key("attention.head_count_kv").c_str(), c.n_heads, where);
  // key_length: a head size decoupled from embedding_length / head_count (Qwen3, Gemma).
  c.d_head = optional<int64_t>(meta, key("attention.key_length").c_str(), c.n_heads > 0 ? c.d_model / c.n_heads : 0, where);
  const int64_t valueLength = optional<int64_t>(meta, key("attention.value_length").c_str(), c.d_head, where);
  if (valueLength != c.d_head)
    throw ConfigError(where + ": " + key("attention.value_length") + " " + std::to_string(valueLength) + " differs from key_length " +
                      std::to_string(c.d_head) + " (not implemented)");
  c.rotary_dim = optional<int64_t>(meta, key("rope.dimension_count").c_str(), 0, where);
  c.rope_theta = optional<double>(meta, key("rope.freq_base").c_str(), 10000.0, where);
  if (scaling == "linear") {
    c.rope_scaling.kind = RopeScalingKind::Linear;
    c.rope_scaling.factor = require<double>(meta, key("rope.scaling.factor").c_str(), where);
  }
  c.n_ctx = optional<int64_t>(meta, key("context_length").c_str(), 2048, where);
  c.norm = NormKind::RmsNorm;
  c.norm_eps = optional<double>(meta, key("attention.layer_norm_rms_epsilon").c_str(), 1e-5, where);
  c.rope = RopeLayout::RotateHalf;  // llama.cpp's NEOX rope: every family but llama's own layout
  c.sliding_window = optional<int64_t>(meta, key("attention.sliding_window").c_str(), 0, where);
  ggufVocabularyAndIds(meta, store, c, where);
  return c;
}

void ggufVocabularyAndIds(const nlohmann::json& meta, const TensorStore& store, ModelConfig& c, const std::string& where) {
  const RawTensor& emb = store.raw("token_embd.weight");
  if (emb.shape.size() != 2) throw WeightError(where + ": tensor 'token_embd.weight' must be 2-D, got " + shapeString(emb.shape));
  c.d_vocab = emb.shape[0];
  c.tied_embeddings = !store.has("output.weight");
  c.bos_token_id = optional<int64_t>(meta, "tokenizer.ggml.bos_token_id", -1, where);
  c.eos_token_id = optional<int64_t>(meta, "tokenizer.ggml.eos_token_id", -1, where);
}

Activation activationFromHf(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return Activation::GeluNew;
  if (name == "gelu") return Activation::Gelu;
  if (name == "relu") return Activation::Relu;
  throw ConfigError(where + ": activation '" + name + "' unsupported (expected silu, gelu, gelu_pytorch_tanh, gelu_new or relu)");
}

std::vector<bool> slidingLayersFromHf(const nlohmann::json& cfg, int64_t nLayers, const std::string& where) {
  // Newer configs list every layer's kind (Qwen3, Gemma 3): "sliding_attention" or "full_attention".
  std::vector<bool> out;
  if (!cfg.contains("layer_types") || cfg["layer_types"].is_null()) return out;
  const auto& types = cfg["layer_types"];
  if (!types.is_array() || static_cast<int64_t>(types.size()) != nLayers)
    throw ConfigError(where + ": layer_types must list " + std::to_string(nLayers) + " layers");
  for (const auto& t : types) {
    if (!t.is_string() || (t != "sliding_attention" && t != "full_attention"))
      throw ConfigError(where + ": layer_types entry " + t.dump() + " unsupported (expected sliding_attention or full_attention)");
    out.push_back(t == "sliding_attention");
  }
  return out;
}

void readSizes(const nlohmann::json& cfg, const SizeKeys& keys, ModelConfig& c, const std::string& where) {
  c.d_model = require<int64_t>(cfg, keys.dModel, where);
  c.n_layers = require<int64_t>(cfg, keys.nLayers, where);
  c.n_heads = require<int64_t>(cfg, keys.nHeads, where);
  c.n_kv_heads = c.n_heads;
  c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  c.d_mlp = keys.mlpFallback > 0 ? optional<int64_t>(cfg, keys.dMlp, keys.mlpFallback, where) : require<int64_t>(cfg, keys.dMlp, where);
}

}  // namespace headlab::arch
