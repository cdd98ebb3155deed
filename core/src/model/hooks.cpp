#include "headlab/core/hooks.h"

#include <algorithm>
#include <unordered_map>

#include "headlab/core/errors.h"

namespace headlab {

namespace detail {
struct HookEntry {
  uint64_t token;
  HookFn fn;
};
struct HookTable {
  std::vector<std::string> names;
  std::vector<int> layers;
  std::unordered_map<std::string, int> ids;
  std::vector<std::vector<HookEntry>> entries;
  uint64_t nextToken = 1;
  size_t count = 0;
};
}  // namespace detail

namespace {
constexpr const char* kLayerSuffix[] = {
    "hook_resid_pre",      "ln1.hook_normalized", "attn.hook_q",         "attn.hook_k",
    "attn.hook_v",         "attn.hook_rot_q",     "attn.hook_rot_k",     "attn.hook_attn_scores",
    "attn.hook_pattern",   "attn.hook_z",         "attn.hook_result",    "hook_attn_out",
    "hook_resid_mid",      "ln2.hook_normalized", "mlp.hook_pre",        "mlp.hook_pre_linear",
    "mlp.hook_post",       "hook_mlp_out",        "hook_resid_post"};
static_assert(sizeof(kLayerSuffix) / sizeof(kLayerSuffix[0]) == static_cast<size_t>(LayerHook::Count));
constexpr const char* kGlobalNames[] = {"hook_embed", "hook_pos_embed", "ln_final.hook_normalized"};
static_assert(sizeof(kGlobalNames) / sizeof(kGlobalNames[0]) == static_cast<size_t>(GlobalHook::Count));

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

const char* layerHookSuffix(LayerHook h) { return kLayerSuffix[static_cast<int>(h)]; }

std::vector<std::string> hookAxes(const std::string& name) {
  if (endsWith(name, "hook_attn_scores") || endsWith(name, "hook_pattern"))
    return {"batch", "head", "q_pos", "k_pos"};
  if (endsWith(name, "hook_q") || endsWith(name, "hook_rot_q") || endsWith(name, "hook_z"))
    return {"batch", "pos", "head", "d_head"};
  if (endsWith(name, "hook_k") || endsWith(name, "hook_v") || endsWith(name, "hook_rot_k"))
    return {"batch", "pos", "kv_head", "d_head"};
  if (endsWith(name, "hook_result")) return {"batch", "pos", "head", "d_model"};
  if (endsWith(name, "mlp.hook_pre") || endsWith(name, "mlp.hook_post") ||
      endsWith(name, "mlp.hook_pre_linear"))
    return {"batch", "pos", "d_mlp"};
  return {"batch", "pos", "d_model"};
}

bool globMatch(const std::string& glob, const std::string& text) {
  // Iterative wildcard match with single-star backtracking.
  size_t g = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < text.size()) {
    if (g < glob.size() && (glob[g] == '?' || glob[g] == text[t])) {
      ++g, ++t;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++, mark = t;
    } else if (star != std::string::npos) {
      g = star + 1, t = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

HookHandle::HookHandle(std::weak_ptr<detail::HookTable> table, int hookId, uint64_t token)
    : m_table(std::move(table)), m_hookId(hookId), m_token(token) {}

HookHandle::HookHandle(HookHandle&& o) noexcept
    : m_table(std::move(o.m_table)), m_hookId(o.m_hookId), m_token(o.m_token) {
  o.m_token = 0;
}

HookHandle& HookHandle::operator=(HookHandle&& o) noexcept {
  if (this != &o) {
    remove();
    m_table = std::move(o.m_table);
    m_hookId = o.m_hookId;
    m_token = o.m_token;
    o.m_token = 0;
  }
  return *this;
}

HookHandle::~HookHandle() { remove(); }

void HookHandle::remove() {
  if (m_token == 0) return;
  if (auto table = m_table.lock()) {
    auto& list = table->entries[m_hookId];
    auto it = std::find_if(list.begin(), list.end(), [&](const auto& e) { return e.token == m_token; });
    if (it != list.end()) {
      list.erase(it);
      --table->count;
    }
  }
  m_token = 0;
}

bool HookHandle::active() const {
  if (m_token == 0) return false;
  auto table = m_table.lock();
  if (!table) return false;
  const auto& list = table->entries[m_hookId];
  return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.token == m_token; });
}

HookRegistry::HookRegistry(int64_t nLayers)
    : m_nLayers(nLayers), m_table(std::make_shared<detail::HookTable>()) {
  auto& t = *m_table;
  for (const char* n : kGlobalNames) {
    t.names.emplace_back(n);
    t.layers.push_back(-1);
  }
  for (int64_t l = 0; l < nLayers; ++l) {
    for (const char* s : kLayerSuffix) {
      t.names.push_back("blocks." + std::to_string(l) + "." + s);
      t.layers.push_back(static_cast<int>(l));
    }
  }
  for (size_t i = 0; i < t.names.size(); ++i) t.ids.emplace(t.names[i], static_cast<int>(i));
  t.entries.resize(t.names.size());
}

const std::vector<std::string>& HookRegistry::names() const { return m_table->names; }

int HookRegistry::idOf(const std::string& name) const {
  auto it = m_table->ids.find(name);
  if (it == m_table->ids.end())
    throw InputError("unknown hook point '" + name + "' (expected e.g. blocks.0.attn.hook_pattern)");
  return it->second;
}

const std::string& HookRegistry::nameOf(int id) const { return m_table->names.at(id); }
int HookRegistry::layerOf(int id) const { return m_table->layers.at(id); }

std::vector<std::string> HookRegistry::match(const std::string& glob) const {
  std::vector<std::string> out;
  for (const auto& n : m_table->names)
    if (globMatch(glob, n)) out.push_back(n);
  if (out.empty()) throw InputError("no hook point matches '" + glob + "'");
  return out;
}

HookHandle HookRegistry::add(int id, HookFn fn) {
  if (id < 0 || id >= static_cast<int>(m_table->entries.size()))
    throw InputError("hook id " + std::to_string(id) + " out of range");
  uint64_t token = m_table->nextToken++;
  m_table->entries[id].push_back({token, std::move(fn)});
  ++m_table->count;
  return HookHandle(m_table, id, token);
}

bool HookRegistry::hasHooks(int id) const { return !m_table->entries[id].empty(); }
size_t HookRegistry::hookCount() const { return m_table->count; }

void HookRegistry::clear() {
  for (auto& e : m_table->entries) e.clear();
  m_table->count = 0;
}

void HookRegistry::run(int id, at::Tensor& activation, int64_t posOffset) const {
  const auto& list = m_table->entries[id];
  if (list.empty()) return;
  HookContext ctx{id, m_table->layers[id], &m_table->names[id], posOffset};
  // Copy: a hook may remove itself (or others) while running.
  auto snapshot = list;
  for (const auto& e : snapshot) e.fn(activation, ctx);
}

}  // namespace headlab
