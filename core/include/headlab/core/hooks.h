// Hook points named exactly as TransformerLens names them, and scoped (RAII) registrations.
//
// A hook receives the activation by reference and may replace it (an intervention) or copy it
// (a capture). Registrations are removed when their HookHandle is destroyed, so an intervention
// never outlives the run that installed it unless the caller keeps the handle.
// Thread: a registry belongs to one model; use it from the thread that runs that model.
#pragma once
#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace headlab {

// Per-layer hook points, in forward order. Shapes (TransformerLens conventions):
enum class LayerHook : int {
  ResidPre,       // blocks.{l}.hook_resid_pre          [batch, pos, d_model]
  Ln1Normalized,  // blocks.{l}.ln1.hook_normalized     [batch, pos, d_model]
  Q,              // blocks.{l}.attn.hook_q             [batch, pos, head, d_head]
  K,              // blocks.{l}.attn.hook_k             [batch, pos, kv_head, d_head]
  V,              // blocks.{l}.attn.hook_v             [batch, pos, kv_head, d_head]
  RotQ,           // blocks.{l}.attn.hook_rot_q         [batch, pos, head, d_head]
  RotK,           // blocks.{l}.attn.hook_rot_k         [batch, pos, kv_head, d_head]
  AttnScores,     // blocks.{l}.attn.hook_attn_scores   [batch, head, q_pos, k_pos] (masked: -inf)
  Pattern,        // blocks.{l}.attn.hook_pattern       [batch, head, q_pos, k_pos]
  Z,              // blocks.{l}.attn.hook_z             [batch, pos, head, d_head]
  Result,         // blocks.{l}.attn.hook_result        [batch, pos, head, d_model] (computed only when hooked)
  AttnOut,        // blocks.{l}.hook_attn_out           [batch, pos, d_model]
  ResidMid,       // blocks.{l}.hook_resid_mid          [batch, pos, d_model]
  Ln2Normalized,  // blocks.{l}.ln2.hook_normalized     [batch, pos, d_model]
  MlpPre,         // blocks.{l}.mlp.hook_pre            [batch, pos, d_mlp]
  MlpPreLinear,   // blocks.{l}.mlp.hook_pre_linear     [batch, pos, d_mlp] (gated MLPs only)
  MlpPost,        // blocks.{l}.mlp.hook_post           [batch, pos, d_mlp]
  MlpOut,         // blocks.{l}.hook_mlp_out            [batch, pos, d_model]
  ResidPost,      // blocks.{l}.hook_resid_post         [batch, pos, d_model]
  Count
};

enum class GlobalHook : int {
  Embed,          // hook_embed                         [batch, pos, d_model]
  PosEmbed,       // hook_pos_embed                     [batch, pos, d_model]
  LnFinal,        // ln_final.hook_normalized           [batch, pos, d_model]
  Count
};

// "hook_pattern" style suffix of a layer hook, including its sub-module ("attn.hook_pattern").
const char* layerHookSuffix(LayerHook h);
// Axis names for an activation, e.g. {"batch","head","q_pos","k_pos"}: used by traces.
std::vector<std::string> hookAxes(const std::string& hookName);

struct HookContext {
  int hookId = -1;
  int layer = -1;                 // -1 for global hooks
  const std::string* name = nullptr;
  int64_t posOffset = 0;          // position of the first row (KV-cache decoding)
};

using HookFn = std::function<void(at::Tensor& activation, const HookContext& ctx)>;

namespace detail {
struct HookTable;
}

// Removes its registration when destroyed. Move-only.
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(std::weak_ptr<detail::HookTable> table, int hookId, uint64_t token);
  HookHandle(HookHandle&& o) noexcept;
  HookHandle& operator=(HookHandle&& o) noexcept;
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  ~HookHandle();
  void remove();
  bool active() const;

 private:
  std::weak_ptr<detail::HookTable> m_table;
  int m_hookId = -1;
  uint64_t m_token = 0;
};

class HookRegistry {
 public:
  explicit HookRegistry(int64_t nLayers);

  int64_t nLayers() const { return m_nLayers; }
  const std::vector<std::string>& names() const;
  // Throws InputError for an unknown name.
  int idOf(const std::string& name) const;
  int idOf(int layer, LayerHook h) const { return static_cast<int>(GlobalHook::Count) + layer * static_cast<int>(LayerHook::Count) + static_cast<int>(h); }
  int idOf(GlobalHook h) const { return static_cast<int>(h); }
  const std::string& nameOf(int id) const;
  int layerOf(int id) const;
  // Hook names matching a glob ('*' matches any run of characters, '?' one). Throws when none match.
  std::vector<std::string> match(const std::string& glob) const;

  [[nodiscard]] HookHandle add(int id, HookFn fn);
  [[nodiscard]] HookHandle add(const std::string& name, HookFn fn) { return add(idOf(name), std::move(fn)); }
  bool hasHooks(int id) const;
  size_t hookCount() const;
  void clear();

  // Runs the hooks registered on `id` in registration order (no-op and no copy when none).
  void run(int id, at::Tensor& activation, int64_t posOffset = 0) const;

 private:
  int64_t m_nLayers;
  std::shared_ptr<detail::HookTable> m_table;
};

bool globMatch(const std::string& glob, const std::string& text);

}  // namespace headlab
