// LLaMA family: RMSNorm, RoPE, SwiGLU, grouped-query attention; Mistral (sliding window) and
// Qwen2 (q/k/v biases) are the same graph with different flags.
#include "architectures.h"
#include "headlab/core/errors.h"

#include <cmath>

namespace headlab::arch {

namespace {
struct LlamaNames {
  const char* embed;
  const char* finalNorm;
  const char* output;
  // Per layer, "{}" is replaced by the layer index.
  const char* attnNorm;
  const char* q;
  const char* k;
  const char* v;
  const char* o;
  const char* qBias;
  const char* kBias;
  const char* vBias;
  const char* oBias;
  const char* ffnNorm;
  const char* gate;
  const char* up;
  const char* down;
};

constexpr LlamaNames kHfNames{
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
    "model.layers.{}.input_layernorm.weight", "model.layers.{}.self_attn.q_proj.weight",
    "model.layers.{}.self_attn.k_proj.weight", "model.layers.{}.self_attn.v_proj.weight",
    "model.layers.{}.self_attn.o_proj.weight", "model.layers.{}.self_attn.q_proj.bias",
    "model.layers.{}.self_attn.k_proj.bias", "model.layers.{}.self_attn.v_proj.bias",
    "model.layers.{}.self_attn.o_proj.bias", "model.layers.{}.post_attention_layernorm.weight", "model.layers.{}.mlp.gate_proj.weight",
    "model.layers.{}.mlp.up_proj.weight", "model.layers.{}.mlp.down_proj.weight"};

constexpr LlamaNames kGgufNames{
    "token_embd.weight", "output_norm.weight", "output.weight",
    "blk.{}.attn_norm.weight", "blk.{}.attn_q.weight", "blk.{}.attn_k.weight", "blk.{}.attn_v.weight",
    "blk.{}.attn_output.weight", "blk.{}.attn_q.bias", "blk.{}.attn_k.bias", "blk.{}.attn_v.bias",
    "blk.{}.attn_output.bias", "blk.{}.ffn_norm.weight", "blk.{}.ffn_gate.weight", "blk.{}.ffn_up.weight", "blk.{}.ffn_down.weight"};

std::string at(const char* pattern, int64_t layer) {
  std::string s(pattern);
  auto pos = s.find("{}");
  return pos == std::string::npos ? s : s.replace(pos, 2, std::to_string(layer));
}

ModelWeights loadLlama(ModelConfig& c, const TensorStore& st, const LlamaNames& n) {
  const int64_t D = c.d_model, q = c.n_heads * c.d_head, kv = c.n_kv_heads * c.d_head, F = c.d_mlp;
  // A tied matrix may be stored under either name (TinyStories-656K keeps only lm_head.weight, as
  // transformers accepts); an untied config without an output matrix is tied (some exports drop it).
  if (!st.has(n.output)) c.tied_embeddings = true;
  ModelWeights w;
  w.embed = st.get(c.tied_embeddings && !st.has(n.embed) ? n.output : n.embed, {c.d_vocab, D});
  w.lnf_w = st.get(n.finalNorm, {D});
  w.unembed = c.tied_embeddings ? w.embed : st.get(n.output, {c.d_vocab, D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.ln1_w = st.get(at(n.attnNorm, l), {D});
    L.wq = st.get(at(n.q, l), {q, D});
    L.wk = st.get(at(n.k, l), {kv, D});
    L.wv = st.get(at(n.v, l), {kv, D});
    L.wo = st.get(at(n.o, l), {D, q});
    L.bq = st.getOptional(at(n.qBias, l), {q});
    L.bk = st.getOptional(at(n.kBias, l), {kv});
    L.bv = st.getOptional(at(n.vBias, l), {kv});
    L.bo = st.getOptional(at(n.oBias, l), {D});
    L.ln2_w = st.get(at(n.ffnNorm, l), {D});
    L.w_gate = st.get(at(n.gate, l), {F, D});
    L.w_in = st.get(at(n.up, l), {F, D});
    L.w_out = st.get(at(n.down, l), {D, F});
    w.layers.push_back(std::move(L));
  }
  return w;
}
}  // namespace

// Keys of LLaMA-family configs that would change the forward and that this reader does not implement.
const std::vector<MathsKey> kUnimplementedHfKeys = {
    {"mlp_bias", false, "biases in the gated MLP"},
    {"partial_rotary_factor", 1.0, "RoPE on part of each head"},
    {"attn_logit_softcapping", nullptr, "attention soft-capping"},
    {"final_logit_softcapping", nullptr, "logit soft-capping"},
    {"query_pre_attn_scalar", nullptr, "a query scale other than 1/sqrt(head_dim)"},
};

ModelConfig llamaConfigFromHf(const nlohmann::json& cfg, const std::string& where) {
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
  c.rope_scaling = ropeScalingFromHf(cfg, c.n_ctx, where);
  c.tied_embeddings = optional<bool>(cfg, "tie_word_embeddings", false, where);
  refuseUnimplemented(cfg, kUnimplementedHfKeys, where);
  if (c.arch == "mistral") c.sliding_window = optional<int64_t>(cfg, "sliding_window", 0, where);
  if (c.arch == "qwen2" && optional<bool>(cfg, "use_sliding_window", false, where)) {
    // Qwen2 slides its window only in layers from max_window_layers on (modeling_qwen2).
    c.sliding_window = optional<int64_t>(cfg, "sliding_window", 0, where);
    c.sliding_window_from_layer = optional<int64_t>(cfg, "max_window_layers", 28, where);
  }
  c.bos_token_id = optional<int64_t>(cfg, "bos_token_id", -1, where);
  c.eos_token_id = cfg.contains("eos_token_id") && cfg["eos_token_id"].is_number_integer() ? cfg["eos_token_id"].get<int64_t>() : -1;
  std::string act = optional<std::string>(cfg, "hidden_act", "silu", where);
  if (act != "silu") throw ConfigError(where + ": hidden_act '" + act + "' unsupported for " + c.arch + " (expected silu)");
  c.validate(where);
  return c;
}

ModelWeights llamaWeightsFromHf(ModelConfig& c, const TensorStore& store) { return loadLlama(c, store, kHfNames); }

ModelConfig llamaConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  std::string a = require<std::string>(meta, "general.architecture", where);
  auto key = [&](const char* k) { return a + "." + k; };
  const std::string scaling = optional<std::string>(meta, key("rope.scaling.type").c_str(), "none", where);
  if (scaling != "none" && scaling != "linear")
    throw ConfigError(where + ": " + key("rope.scaling.type") + " '" + scaling + "' is not implemented (implemented: none, linear)");
  if (store.has("rope_freqs.weight"))
    throw ConfigError(where + ": tensor 'rope_freqs.weight' (per-frequency RoPE factors, Llama 3.1 and later) is not implemented");
  ModelConfig c;
  c.arch = a;
  c.d_model = require<int64_t>(meta, key("embedding_length").c_str(), where);
  c.d_mlp = require<int64_t>(meta, key("feed_forward_length").c_str(), where);
  c.n_layers = require<int64_t>(meta, key("block_count").c_str(), where);
  c.n_heads = require<int64_t>(meta, key("attention.head_count").c_str(), where);
  c.n_kv_heads = optional<int64_t>(meta, key("attention.head_count_kv").c_str(), c.n_heads, where);
  c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  c.rotary_dim = optional<int64_t>(meta, key("rope.dimension_count").c_str(), 0, where);
  c.rope_theta = optional<double>(meta, key("rope.freq_base").c_str(), 10000.0, where);
  if (scaling == "linear") {
    c.rope_scaling.kind = RopeScalingKind::Linear;
    c.rope_scaling.factor = require<double>(meta, key("rope.scaling.factor").c_str(), where);
  }
  c.n_ctx = optional<int64_t>(meta, key("context_length").c_str(), 2048, where);
  c.norm = NormKind::RmsNorm;
  c.norm_eps = optional<double>(meta, key("attention.layer_norm_rms_epsilon").c_str(), 1e-5, where);
  // llama.cpp permutes llama q/k rows to interleaved pairs; qwen2 keeps Hugging Face's halves.
  c.rope = a == "qwen2" ? RopeLayout::RotateHalf : RopeLayout::Interleaved;
  c.sliding_window = optional<int64_t>(meta, key("attention.sliding_window").c_str(), 0, where);
  const RawTensor& emb = store.raw("token_embd.weight");
  if (emb.shape.size() != 2) throw WeightError(where + ": tensor 'token_embd.weight' must be 2-D, got " + shapeString(emb.shape));
  c.d_vocab = emb.shape[0];
  c.tied_embeddings = !store.has("output.weight");
  c.bos_token_id = optional<int64_t>(meta, "tokenizer.ggml.bos_token_id", -1, where);
  c.eos_token_id = optional<int64_t>(meta, "tokenizer.ggml.eos_token_id", -1, where);
  c.validate(where);
  return c;
}

ModelConfig llamaConfigFromLlama2c(const Llama2cHeader& h) {
  ModelConfig c;
  c.arch = "llama";
  c.d_model = h.dim;
  c.d_mlp = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.d_head = h.dim / h.n_heads;
  c.d_vocab = h.vocab_size;
  c.n_ctx = h.seq_len;
  c.norm = NormKind::RmsNorm;
  c.norm_eps = 1e-5;
  c.rope = RopeLayout::Interleaved;
  c.tied_embeddings = h.shared_classifier;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.validate("llama2.c header");
  return c;
}

ModelWeights llamaWeightsFromGguf(ModelConfig& c, const TensorStore& store) { return loadLlama(c, store, kGgufNames); }

RopeScaling ropeScalingFromHf(const nlohmann::json& cfg, int64_t maxPositions, const std::string& where) {
  RopeScaling r;
  if (!cfg.contains("rope_scaling") || cfg["rope_scaling"].is_null()) return r;
  const nlohmann::json& s = cfg["rope_scaling"];
  const std::string w = where + " rope_scaling";
  if (!s.is_object()) throw ConfigError(w + ": expected an object or null, got " + s.type_name());
  // transformers reads rope_type, and type in older configs.
  const std::string type = s.contains("rope_type") ? require<std::string>(s, "rope_type", w) : require<std::string>(s, "type", w);
  if (type == "default") return r;
  if (type != "linear" && type != "llama3" && type != "yarn")
    throw ConfigError(w + ": rope_type '" + type + "' is not implemented (implemented: default, linear, llama3, yarn); refusing rather than computing other positions");
  r.factor = require<double>(s, "factor", w);
  if (type == "linear") {
    r.kind = RopeScalingKind::Linear;
  } else if (type == "llama3") {
    r.kind = RopeScalingKind::Llama3;
    r.low_freq_factor = require<double>(s, "low_freq_factor", w);
    r.high_freq_factor = require<double>(s, "high_freq_factor", w);
    r.original_max_positions = require<int64_t>(s, "original_max_position_embeddings", w);
  } else {
    r.kind = RopeScalingKind::Yarn;
    refuseUnimplemented(s, {{"mscale", nullptr, "DeepSeek's mscale"}, {"mscale_all_dim", nullptr, "DeepSeek's mscale"},
                            {"truncate", true, "an untruncated correction range"}}, w);
    r.original_max_positions = optional<int64_t>(s, "original_max_position_embeddings", maxPositions, w);
    r.beta_fast = optional<double>(s, "beta_fast", 32.0, w);
    r.beta_slow = optional<double>(s, "beta_slow", 1.0, w);
    // YaRN's attention temperature: 0.1 ln(s) + 1 unless the config gives it.
    r.attention_factor = optional<double>(s, "attention_factor", r.factor > 1 ? 0.1 * std::log(r.factor) + 1.0 : 1.0, w);
  }
  return r;
}

}  // namespace headlab::arch
