// The sweep kinds: one row per kind, each with its axes and the patches of one layer. The engines
// (batched.cpp, per_forward.cpp, attribution.cpp) know nothing else about a kind.
#include <ostream>
#include <string>

#include "headlab/core/errors.h"
#include "headlab/core/patching.h"

namespace headlab {

namespace {
// Flat row-major index of (i0, i1, ...) in a grid of the given axes.
int64_t cellOf(const std::vector<SweepAxis>& axes, std::initializer_list<int64_t> index) {
  int64_t cell = 0;
  size_t a = 0;
  for (int64_t i : index) cell = cell * axes[a++].size + i;
  return cell;
}

// Sweeps over one hook's heads: all positions ([layer, head]) or one at a time ([layer, head, pos]).
template <bool KvHeads>
std::vector<SweepAxis> headAxes(const SweepShape& s) {
  return {{"layer", s.layers, {}}, {KvHeads ? "kv_head" : "head", KvHeads ? s.kvHeads : s.heads, {}}};
}
template <LayerHook Hook, bool KvHeads>
std::vector<LayerPatch> headPatches(int64_t l, const SweepShape& s) {
  const auto axes = headAxes<KvHeads>(s);
  std::vector<LayerPatch> out;
  for (int64_t h = 0; h < axes[1].size; ++h) out.push_back({Hook, h, -1, cellOf(axes, {l, h})});
  return out;
}
template <bool KvHeads>
std::vector<SweepAxis> headPosAxes(const SweepShape& s) {
  auto axes = headAxes<KvHeads>(s);
  axes.push_back({"pos", s.positions, {}});
  return axes;
}
template <LayerHook Hook, bool KvHeads>
std::vector<LayerPatch> headPosPatches(int64_t l, const SweepShape& s) {
  const auto axes = headPosAxes<KvHeads>(s);
  std::vector<LayerPatch> out;
  for (int64_t h = 0; h < axes[1].size; ++h)
    for (int64_t p = 0; p < s.positions; ++p) out.push_back({Hook, h, p, cellOf(axes, {l, h, p})});
  return out;
}

// Sweeps over a residual-width hook, one position at a time: [layer, pos].
std::vector<SweepAxis> layerPosAxes(const SweepShape& s) {
  return {{"layer", s.layers, {}}, {"pos", s.positions, {}}};
}
template <LayerHook Hook>
std::vector<LayerPatch> layerPosPatches(int64_t l, const SweepShape& s) {
  const auto axes = layerPosAxes(s);
  std::vector<LayerPatch> out;
  for (int64_t p = 0; p < s.positions; ++p) out.push_back({Hook, -1, p, cellOf(axes, {l, p})});
  return out;
}

// Several residual-width hooks side by side: [component, layer, pos].
template <LayerHook... Hooks>
std::vector<SweepAxis> componentAxes(const SweepShape& s) {
  std::vector<std::string> names;
  for (LayerHook h : {Hooks...}) {
    const std::string suffix = layerHookSuffix(h);  // "hook_attn_out" -> "attn_out"
    names.push_back(suffix.substr(suffix.rfind("hook_") + 5));
  }
  return {{"component", static_cast<int64_t>(names.size()), names}, {"layer", s.layers, {}}, {"pos", s.positions, {}}};
}
template <LayerHook... Hooks>
std::vector<LayerPatch> componentPatches(int64_t l, const SweepShape& s) {
  const auto axes = componentAxes<Hooks...>(s);
  std::vector<LayerPatch> out;
  int64_t c = 0;
  for (LayerHook h : {Hooks...}) {
    for (int64_t p = 0; p < s.positions; ++p) out.push_back({h, -1, p, cellOf(axes, {c, l, p})});
    ++c;
  }
  return out;
}

// TransformerLens names the components of this sweep "attn" and "mlp"; the JSON keeps those labels.
std::vector<SweepAxis> attnMlpAxes(const SweepShape& s) {
  auto axes = componentAxes<LayerHook::AttnOut, LayerHook::MlpOut>(s);
  axes[0].labels = {"attn", "mlp"};
  return axes;
}

// The table: name, summary, axes, patches of one layer. The first four are SweepKind's named kinds.
using L = LayerHook;
const SweepLayout kLayouts[] = {
    {"heads", "every head's output z over all positions -> [layer, head]", headAxes<false>, headPatches<L::Z, false>},
    {"head-pos", "every head's z at one position -> [layer, head, pos]", headPosAxes<false>, headPosPatches<L::Z, false>},
    {"resid-pos", "the residual stream before a layer at one position -> [layer, pos]", layerPosAxes, layerPosPatches<L::ResidPre>},
    {"layer-pos", "attention and MLP outputs of a layer at one position -> [component, layer, pos]", attnMlpAxes,
     componentPatches<L::AttnOut, L::MlpOut>},
    {"resid-mid-pos", "the residual stream between attention and MLP at one position -> [layer, pos]", layerPosAxes,
     layerPosPatches<L::ResidMid>},
    {"attn-out-pos", "a layer's attention output at one position -> [layer, pos]", layerPosAxes, layerPosPatches<L::AttnOut>},
    {"mlp-out-pos", "a layer's MLP output at one position -> [layer, pos]", layerPosAxes, layerPosPatches<L::MlpOut>},
    {"block-every", "resid_pre, attn_out and mlp_out at one position -> [component, layer, pos]",
     componentAxes<L::ResidPre, L::AttnOut, L::MlpOut>, componentPatches<L::ResidPre, L::AttnOut, L::MlpOut>},
    {"q-heads", "every head's query over all positions -> [layer, head]", headAxes<false>, headPatches<L::Q, false>},
    {"k-heads", "every kv head's key over all positions -> [layer, kv_head]", headAxes<true>, headPatches<L::K, true>},
    {"v-heads", "every kv head's value over all positions -> [layer, kv_head]", headAxes<true>, headPatches<L::V, true>},
    {"pattern-heads", "every head's attention pattern, all query rows -> [layer, head]", headAxes<false>, headPatches<L::Pattern, false>},
    {"q-head-pos", "every head's query at one position -> [layer, head, pos]", headPosAxes<false>, headPosPatches<L::Q, false>},
    {"k-head-pos", "every kv head's key at one position -> [layer, kv_head, pos]", headPosAxes<true>, headPosPatches<L::K, true>},
    {"v-head-pos", "every kv head's value at one position -> [layer, kv_head, pos]", headPosAxes<true>, headPosPatches<L::V, true>},
    {"pattern-head-pos", "every head's attention row at one query position -> [layer, head, pos]", headPosAxes<false>,
     headPosPatches<L::Pattern, false>},
};
}  // namespace

const SweepKind SweepKind::Heads{&kLayouts[0]};
const SweepKind SweepKind::HeadPos{&kLayouts[1]};
const SweepKind SweepKind::ResidPos{&kLayouts[2]};
const SweepKind SweepKind::LayerPos{&kLayouts[3]};

const std::vector<SweepKind>& sweepKinds() {
  static const std::vector<SweepKind> kinds = [] {
    std::vector<SweepKind> out;
    for (const SweepLayout& l : kLayouts) out.emplace_back(&l);
    return out;
  }();
  return kinds;
}

const char* toString(SweepKind k) { return k.layout().name; }

std::ostream& operator<<(std::ostream& os, SweepKind k) { return os << k.layout().name; }

std::ostream& operator<<(std::ostream& os, PatchDirection d) { return os << (d == PatchDirection::Denoising ? "denoising" : "noising"); }

SweepKind sweepKindFromString(const std::string& s) {
  for (SweepKind k : sweepKinds())
    if (s == k.layout().name) return k;
  throw InputError("unknown sweep '" + s + "' (expected " + sweepKindList(", ", " or ") + ")");
}

std::string sweepKindList(const std::string& separator, const std::string& last) {
  std::string out;
  const auto& kinds = sweepKinds();
  for (size_t i = 0; i < kinds.size(); ++i)
    out += (i == 0 ? "" : i + 1 == kinds.size() && !last.empty() ? last : separator) + kinds[i].layout().name;
  return out;
}

std::vector<std::string> sweepAxisLabels(const SweepAxis& axis, const std::vector<std::string>& positionLabels) {
  if (!axis.labels.empty()) return axis.labels;
  if (axis.name == "pos" && static_cast<int64_t>(positionLabels.size()) == axis.size) return positionLabels;
  const std::string prefix = axis.name == "layer" || axis.name == "sender_layer" ? "L"
                             : axis.name == "head" || axis.name == "sender_head" ? "H"
                             : axis.name == "kv_head"                            ? "KV"
                                                                                 : "";
  std::vector<std::string> out;
  for (int64_t i = 0; i < axis.size; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

}  // namespace headlab
