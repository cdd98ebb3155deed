// LLaMA family: RMSNorm, RoPE, SwiGLU, grouped-query attention; Mistral (sliding window) and
// Qwen2 (q/k/v biases) are the same graph with different flags.
#include "architectures.h"
#include "headlab/core/errors.h"

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
    "model.layers.{}.post_attention_layernorm.weight", "model.layers.{}.mlp.gate_proj.weight",
    "model.layers.{}.mlp.up_proj.weight", "model.layers.{}.mlp.down_proj.weight"};

constexpr LlamaNames kGgufNames{
    "token_embd.weight", "output_norm.weight", "output.weight",
    "blk.{}.attn_norm.weight", "blk.{}.attn_q.weight", "blk.{}.attn_k.weight", "blk.{}.attn_v.weight",
    "blk.{}.attn_output.weight", "blk.{}.attn_q.bias", "blk.{}.attn_k.bias", "blk.{}.attn_v.bias",
    "blk.{}.ffn_norm.weight", "blk.{}.ffn_gate.weight", "blk.{}.ffn_up.weight", "blk.{}.ffn_down.weight"};

std::string at(const char* pattern, int64_t layer) {
  std::string s(pattern);
  auto pos = s.find("{}");
  return pos == std::string::npos ? s : s.replace(pos, 2, std::to_string(layer));
}

ModelWeights loadLlama(const ModelConfig& c, const TensorStore& st, const LlamaNames& n) {
  const int64_t D = c.d_model, q = c.n_heads * c.d_head, kv = c.n_kv_heads * c.d_head, F = c.d_mlp;
  ModelWeights w;
  w.embed = st.get(n.embed, {c.d_vocab, D});
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
    L.ln2_w = st.get(at(n.ffnNorm, l), {D});
    L.w_gate = st.get(at(n.gate, l), {F, D});
    L.w_in = st.get(at(n.up, l), {F, D});
    L.w_out = st.get(at(n.down, l), {D, F});
    w.layers.push_back(std::move(L));
  }
  return w;
}
}  // namespace

bool isLlamaFamily(const std::string& t) { return t == "llama" || t == "mistral" || t == "qwen2"; }

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
  c.tied_embeddings = optional<bool>(cfg, "tie_word_embeddings", false, where);
  if (c.arch == "mistral" || (c.arch == "qwen2" && optional<bool>(cfg, "use_sliding_window", false, where)))
    c.sliding_window = optional<int64_t>(cfg, "sliding_window", 0, where);
  c.bos_token_id = optional<int64_t>(cfg, "bos_token_id", -1, where);
  c.eos_token_id = cfg.contains("eos_token_id") && cfg["eos_token_id"].is_number_integer() ? cfg["eos_token_id"].get<int64_t>() : -1;
  std::string act = optional<std::string>(cfg, "hidden_act", "silu", where);
  if (act != "silu") throw ConfigError(where + ": hidden_act '" + act + "' unsupported for " + c.arch + " (expected silu)");
  c.validate(where);
  return c;
}

ModelWeights llamaWeightsFromHf(const ModelConfig& c, const TensorStore& store) {
  ModelConfig cfg = c;
  if (!c.tied_embeddings && !store.has(kHfNames.output)) cfg.tied_embeddings = true;  // some exports drop a tied lm_head
  return loadLlama(cfg, store, kHfNames);
}

ModelConfig llamaConfigFromGguf(const nlohmann::json& meta, const TensorStore& store, const std::string& where) {
  std::string a = require<std::string>(meta, "general.architecture", where);
  if (a != "llama" && a != "mistral" && a != "qwen2")
    throw ConfigError(where + ": GGUF architecture '" + a + "' unsupported (expected llama, mistral or qwen2)");
  auto key = [&](const char* k) { return a + "." + k; };
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

ModelWeights llamaWeightsFromGguf(const ModelConfig& c, const TensorStore& store) {
  return loadLlama(c, store, kGgufNames);
}

}  // namespace headlab::arch
