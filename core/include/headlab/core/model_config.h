// Architecture-independent description of a decoder-only transformer.
// Field names mirror config files and HDF5 attributes (n_layers, d_model, ...).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace headlab {

enum class NormKind { LayerNorm, RmsNorm };
enum class Activation { GeluNew, Gelu, Silu, Relu, QuickGelu };  // QuickGelu: x * sigmoid(1.702 x) (CLIP)
// Interleaved: llama2.c / GGUF pairs (x[2i], x[2i+1]). RotateHalf: Hugging Face (x[i], x[i+d/2]).
enum class RopeLayout { None, Interleaved, RotateHalf };

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
  int64_t rotary_dim = 0;        // 0 = d_head
  bool tied_embeddings = true;
  int64_t sliding_window = 0;    // Mistral: keys further back than this are masked; 0 = off
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;

  // Throws ConfigError naming the first inconsistent field.
  void validate(const std::string& where) const;
  int64_t groupSize() const { return n_heads / n_kv_heads; }
  int64_t rotaryDim() const { return rotary_dim > 0 ? rotary_dim : d_head; }
  int64_t paramCount() const;
};

// JSON for `headlab-cli info`: arch, n_layers, n_heads, n_kv_heads, d_model, d_head, d_vocab, n_ctx, n_params.
nlohmann::json configToJson(const ModelConfig& c);
const char* toString(RopeLayout r);
const char* toString(Activation a);

}  // namespace headlab
