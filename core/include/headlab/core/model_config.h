// Architecture-independent description of a decoder-only transformer.
// Field names mirror config files and HDF5 attributes (n_layers, d_model, ...).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace headlab {

enum class NormKind { LayerNorm, RmsNorm };
enum class Activation { GeluNew, Gelu, Silu, Relu, QuickGelu };  // QuickGelu: x * sigmoid(1.702 x) (CLIP)
// Interleaved: llama2.c / GGUF pairs (x[2i], x[2i+1]). RotateHalf: Hugging Face (x[i], x[i+d/2]).
enum class RopeLayout { None, Interleaved, RotateHalf };
// PerHead: over each head's d_head features (Qwen3, Gemma 3); Projection: over the whole q / k
// projection before it is split into heads (OLMo-2).
enum class QkNorm { None, PerHead, Projection };

// RoPE frequency scaling (config.json's rope_scaling), as transformers' modeling_rope_utils defines it.
// Linear divides every frequency by `factor`; Llama3 divides the low frequencies, keeps the high ones and
// blends in between; Yarn blends per frequency between original and divided (beta_fast/beta_slow
// rotations) and multiplies cos and sin by attention_factor. Dynamic (NTK) and LongRope depend on the
// length of the sequence a forward covers: past original_max_positions, Dynamic raises the base with
// the length and LongRope switches from short_factor to long_factor (and LongRope scales cos and sin by
// attention_factor at every length). Other rope types are refused on load.
enum class RopeScalingKind { None, Linear, Llama3, Yarn, Dynamic, LongRope };
struct RopeScaling {
  RopeScalingKind kind = RopeScalingKind::None;
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  int64_t original_max_positions = 0;                     // llama3 and yarn
  double beta_fast = 32.0, beta_slow = 1.0;               // yarn
  double attention_factor = 1.0;                          // yarn, longrope: scales cos and sin
  std::vector<double> short_factor, long_factor;          // longrope: one divisor per rotary pair

  // Dynamic and LongRope: the frequencies of a forward covering `length` positions differ from those
  // of a shorter one once length exceeds original_max_positions.
  bool dependsOnLength() const { return kind == RopeScalingKind::Dynamic || kind == RopeScalingKind::LongRope; }
};

struct ModelConfig {
  std::string arch;  // "gpt2", "llama", "mistral", "qwen2"
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t d_model = 0;
  int64_t d_head = 0;
  int64_t d_mlp = 0;
  int64_t d_vocab = 0;
  int64_t n_ctx = 0;
  NormKind norm = NormKind::RmsNorm;
  double norm_eps = 1e-5;
  Activation act = Activation::Silu;
  bool gated_mlp = true;         // SwiGLU: w_out(act(w_gate x) * (w_in x))
  bool learned_pos = false;      // GPT-2 positional embedding table
  bool causal = true;            // false: every query sees every key (vision encoders)
  RopeLayout rope = RopeLayout::Interleaved;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t rotary_dim = 0;        // 0 = d_head
  bool tied_embeddings = true;
  int64_t sliding_window = 0;    // Mistral: keys further back than this are masked; 0 = off
  // Which layers slide (Qwen2 from max_window_layers on, Gemma 2 every other, Gemma 3 five of six);
  // empty: every layer does when sliding_window > 0.
  std::vector<bool> sliding_layers;
  double rope_local_theta = 0;   // Gemma 3: RoPE base of the sliding layers, without rope_scaling (0: as the others)
  // Family quirks, all off by default.
  double embed_scale = 1.0;      // Gemma: embeddings times sqrt(d_model)
  double norm_weight_offset = 0; // Gemma (HF layout): RMSNorm scales are offset + w, computed in float32
  double attn_scale = 0;         // scores scale; 0: 1/sqrt(d_head) (Gemma 2/3: query_pre_attn_scalar^-1/2)
  double attn_softcap = 0;       // Gemma 2: scores = cap * tanh(scores / cap) before the mask; 0 = off
  double final_softcap = 0;      // Gemma 2: logits = cap * tanh(logits / cap); 0 = off
  QkNorm qk_norm = QkNorm::None; // RMSNorm of q and k before RoPE
  bool pre_norms = true;         // ln1 / ln2 before attention and MLP (OLMo-2 has none)
  bool post_norms = false;       // RMSNorm of the attention and MLP outputs before the residual add (Gemma 2/3, OLMo-2)
  bool parallel_residual = false;  // GPT-NeoX: resid + attn(ln1 resid) + mlp(ln2 resid)
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;

  // Throws ConfigError naming the first inconsistent field.
  void validate(const std::string& where) const;
  int64_t groupSize() const { return n_heads / n_kv_heads; }
  int64_t rotaryDim() const { return rotary_dim > 0 ? rotary_dim : d_head; }
  // The sliding window of one layer (0 = full causal attention).
  int64_t slidingWindowAt(int64_t layer) const {
    const bool slides = sliding_layers.empty() || (layer >= 0 && layer < static_cast<int64_t>(sliding_layers.size()) && sliding_layers[layer]);
    return slides ? sliding_window : 0;
  }
  int64_t paramCount() const;
};

// JSON for `headlab-cli info`: arch, n_layers, n_heads, n_kv_heads, d_model, d_head, d_vocab, n_ctx, n_params.
nlohmann::json configToJson(const ModelConfig& c);
const char* toString(RopeLayout r);
const char* toString(Activation a);
const char* toString(RopeScalingKind k);
// Per rotary pair i (rotaryDim() / 2 of them): the inverse frequency after rope_scaling, in float32
// as transformers and llama2.c compute it.
// local: the sliding layers' frequencies (rope_local_theta, no scaling) where the model has them.
// length: the number of positions the forward covers (its last position + 1), which Dynamic and
// LongRope scaling read as transformers does (`max(position_ids) + 1`); 0 for the frequencies within
// the original context.
std::vector<float> ropeInverseFrequencies(const ModelConfig& c, bool local = false, int64_t length = 0);

}  // namespace headlab
