#include "headlab/core/interventions.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"

namespace headlab {

namespace {
// In InterventionKind's order.
constexpr const char* kKindNames[] = {"zero", "mean", "resample", "uniform", "scale", "act", "pasta", "var"};

at::Tensor headIndex(const std::vector<int>& heads, const at::Tensor& like) {
  return at::tensor(std::vector<int64_t>(heads.begin(), heads.end()), at::TensorOptions().dtype(at::kLong).device(like.device()));
}

// Keys each query row may see: [q, k] bool, true = visible.
at::Tensor visibleKeys(int64_t q, int64_t k, int64_t posOffset, int64_t window, at::Device dev) {
  auto opt = at::TensorOptions().dtype(at::kLong).device(dev);
  at::Tensor qpos = at::arange(posOffset, posOffset + q, opt).unsqueeze(1);
  at::Tensor kpos = at::arange(k, opt).unsqueeze(0);
  at::Tensor vis = kpos <= qpos;
  if (window > 0) vis = vis.logical_and(qpos - kpos < window);
  return vis;
}
}  // namespace

const char* toString(InterventionKind k) { return kKindNames[static_cast<int>(k)]; }

InterventionKind interventionKindFromString(const std::string& s) {
  std::string expected;
  for (size_t i = 0; i < std::size(kKindNames); ++i) {
    if (s == kKindNames[i]) return static_cast<InterventionKind>(i);
    expected += std::string(i == 0 ? "" : i + 1 == std::size(kKindNames) ? " or " : ", ") + kKindNames[i];
  }
  throw InputError("unknown intervention kind '" + s + "' (expected " + expected + ")");
}

nlohmann::json Intervention::describe() const {
  nlohmann::json j = {{"kind", toString(kind)}, {"layer", layer}, {"heads", heads},
                      {"granularity", kvGroup ? "kv_group" : "query_head"}};
  const bool redistributes = kind == InterventionKind::ActRedistribute || kind == InterventionKind::VarRedistribute;
  if (kind == InterventionKind::Scale || kind == InterventionKind::Pasta || redistributes) j["alpha"] = alpha;
  if (!keys.empty()) j["keys"] = keys;
  if (kind == InterventionKind::ActRedistribute && keys.empty()) j["sinks"] = "per head, on each input", j["threshold"] = threshold;
  if (redistributes && (receiverBegin != 0 || receiverEnd != -1)) j["receivers"] = {receiverBegin, receiverEnd};
  if (rows.defined()) j["rows_edited"] = rows.sum().item<int64_t>();
  return j;
}

std::vector<int> targetQueryHeads(const Intervention& iv, int64_t nHeads, int64_t nKvHeads) {
  std::vector<int> out;
  const int64_t limit = iv.kvGroup ? nKvHeads : nHeads, group = nHeads / nKvHeads;
  for (int h : iv.heads) {
    if (h < 0 || h >= limit)
      throw InputError(std::string(iv.kvGroup ? "kv head " : "head ") + std::to_string(h) + " out of range [0, " +
                       std::to_string(limit) + ") in layer " + std::to_string(iv.layer));
    if (iv.kvGroup)
      for (int64_t g = 0; g < group; ++g) out.push_back(static_cast<int>(h * group + g));
    else
      out.push_back(h);
  }
  return out;
}

void zeroHeads(at::Tensor& z, const std::vector<int>& heads) { z.index_fill_(2, headIndex(heads, z), 0); }

void scaleHeads(at::Tensor& z, const std::vector<int>& heads, double alpha) {
  at::Tensor idx = headIndex(heads, z);
  z.index_copy_(2, idx, z.index_select(2, idx) * alpha);
}

void replaceHeads(at::Tensor& z, const std::vector<int>& heads, const at::Tensor& source) {
  // source: [batch|1, pos|1, head, d_head]; broadcast over batch and position as given.
  at::Tensor idx = headIndex(heads, z);
  at::Tensor src = source.to(z.device(), z.scalar_type());
  if (src.dim() == 3) src = src.unsqueeze(0);
  if (src.size(1) != 1 && src.size(1) != z.size(1))
    throw ShapeError("resample/mean source has " + std::to_string(src.size(1)) + " positions; the run has " + std::to_string(z.size(1)));
  at::Tensor picked = src.index_select(2, idx).expand({z.size(0), z.size(1), static_cast<int64_t>(heads.size()), z.size(3)});
  z.index_copy_(2, idx, picked.contiguous());
}

void uniformPattern(at::Tensor& pattern, const std::vector<int>& heads, int64_t posOffset, int64_t window) {
  at::Tensor vis = visibleKeys(pattern.size(2), pattern.size(3), posOffset, window, pattern.device()).to(pattern.scalar_type());
  at::Tensor uniform = vis / vis.sum(-1, true);  // [q, k]
  at::Tensor idx = headIndex(heads, pattern);
  pattern.index_copy_(1, idx, uniform.expand({pattern.size(0), static_cast<int64_t>(heads.size()), -1, -1}).contiguous());
}

void redistributeSinks(at::Tensor& pattern, const std::vector<int>& heads, const SinkRedistribution& r) {
  at::Tensor idx = headIndex(heads, pattern);
  at::Tensor a = pattern.index_select(1, idx);  // [batch, h, q, k]
  const int64_t K = a.size(3);
  auto keyMask = at::TensorOptions().dtype(at::kBool).device(a.device());
  at::Tensor isSink = at::zeros({K}, keyMask), receives = at::zeros({K}, keyMask);
  for (int64_t s : r.sinks)
    if (s >= 0 && s < K) isSink[s] = true;
  receives.slice(0, std::min(std::max<int64_t>(r.receiverBegin, 0), K), r.receiverEnd < 0 ? K : std::min(r.receiverEnd, K)).fill_(true);
  at::Tensor sinkPart = a * isSink;
  at::Tensor toOthers = a * receives.logical_and(isSink.logical_not());
  at::Tensor freed = (1.0 - r.keep) * sinkPart.sum(-1, true);
  at::Tensor otherSum = toOthers.sum(-1, true);
  at::Tensor edited = sinkPart * r.keep + (a - sinkPart) + freed * toOthers / otherSum.clamp_min(1e-30);
  at::Tensor apply = otherSum > 0;  // [batch, h, q, 1]: rows with somewhere to give the mass
  if (r.rows.defined()) apply = apply.logical_and(r.rows.to(a.device()).index_select(1, idx).unsqueeze(-1));
  pattern.index_copy_(1, idx, at::where(apply, edited, a));
}

std::vector<int64_t> actSinks(const at::Tensor& pattern, int head, double threshold, int64_t posOffset) {
  at::Tensor a = pattern.select(1, head)[0].to(at::kCPU, at::kDouble);  // [q, k]
  const int64_t q = a.size(0), k = a.size(1);
  // Rows at positions posOffset .. posOffset + q - 1 see key j when j <= their position.
  at::Tensor seeing = (q - (at::arange(k, at::kDouble) - posOffset).clamp_min(0)).clamp_min(1);
  at::Tensor mean = a.sum(0) / seeing;
  std::vector<int64_t> sinks;
  for (int64_t j = 0; j < k; ++j)
    if (mean[j].item<double>() > threshold) sinks.push_back(j);
  if (!sinks.empty()) sinks.erase(sinks.begin());
  return sinks;
}

void steerScores(at::Tensor& scores, const std::vector<int>& heads, const std::vector<int64_t>& emphasised, double alpha) {
  at::Tensor bias = at::full({scores.size(3)}, std::log(alpha), scores.options());
  for (int64_t k : emphasised)
    if (k >= 0 && k < scores.size(3)) bias[k] = 0;
  at::Tensor idx = headIndex(heads, scores);
  scores.index_copy_(1, idx, scores.index_select(1, idx) + bias);
}

namespace {
std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) out.push_back(part);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

int64_t integerIn(const std::string& text, const std::string& where) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size()) throw InputError(where + ": '" + text + "' is not an integer");
  return v;
}

// "A" or "A-B" (inclusive) as [A, B].
std::pair<int64_t, int64_t> range(const std::string& text, const std::string& where) {
  const auto dash = text.find('-', 1);
  if (dash == std::string::npos) {
    const int64_t v = integerIn(text, where);
    return {v, v};
  }
  const int64_t a = integerIn(text.substr(0, dash), where), b = integerIn(text.substr(dash + 1), where);
  if (b < a) throw InputError(where + ": range '" + text + "' runs backwards");
  return {a, b};
}

double number(const std::string& text, const std::string& where) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || !std::isfinite(v)) throw InputError(where + ": '" + text + "' is not a number");
  return v;
}
}  // namespace

std::vector<Intervention> parseInterventions(const std::string& spec, int64_t nLayers, int64_t nHeads) {
  std::vector<Intervention> out;
  for (const std::string& one : split(spec, ';')) {
    if (one.empty()) continue;
    const std::string where = "edit '" + one + "'";
    const auto parts = split(one, ':');
    if (parts.size() < 2) throw InputError(where + ": expected KIND:HEADS[:option=value...], e.g. zero:3.1 or act:2-4.*:beta=0.4");
    const InterventionKind kind = interventionKindFromString(parts[0]);
    if (kind == InterventionKind::Mean || kind == InterventionKind::Resample || kind == InterventionKind::VarRedistribute)
      throw InputError(where + ": " + parts[0] + " needs source activations or an image span; use the window, a probe or the API");
    Intervention base{kind, 0, {}};
    if (kind == InterventionKind::Pasta) base.alpha = 0.01;
    if (kind == InterventionKind::ActRedistribute) base.alpha = 0.4;
    for (size_t i = 2; i < parts.size(); ++i) {
      const auto eq = parts[i].find('=');
      if (eq == std::string::npos) throw InputError(where + ": option '" + parts[i] + "' is not name=value");
      const std::string name = parts[i].substr(0, eq), value = parts[i].substr(eq + 1);
      if (name == "alpha" || name == "beta") {
        base.alpha = number(value, where);
      } else if (name == "threshold") {
        base.threshold = number(value, where);
      } else if (name == "keys") {
        for (const std::string& item : split(value, '+')) {
          const auto [a, b] = range(item, where);
          if (a < 0) throw InputError(where + ": key " + std::to_string(a) + " is negative");
          for (int64_t k = a; k <= b; ++k) base.keys.push_back(k);
        }
      } else {
        throw InputError(where + ": unknown option '" + name + "' (expected alpha, beta, threshold or keys)");
      }
    }
    if (kind == InterventionKind::Pasta && base.keys.empty()) throw InputError(where + ": pasta needs keys=… (the emphasised positions)");
    std::map<int64_t, std::set<int>> heads;  // layer -> heads
    for (const std::string& target : split(parts[1], ',')) {
      const auto dot = target.find('.');
      if (dot == std::string::npos) throw InputError(where + ": head '" + target + "' is not LAYER.HEAD (e.g. 3.1, 3.*, 2-4.0)");
      const auto [la, lb] = range(target.substr(0, dot), where);
      const std::string h = target.substr(dot + 1);
      for (int64_t l = la; l <= lb; ++l) {
        if (l < 0 || l >= nLayers) throw InputError(where + ": layer " + std::to_string(l) + " out of range [0, " + std::to_string(nLayers) + ")");
        if (h == "*") {
          for (int64_t k = 0; k < nHeads; ++k) heads[l].insert(static_cast<int>(k));
          continue;
        }
        const auto [ha, hb] = range(h, where);
        for (int64_t k = ha; k <= hb; ++k) {
          if (k < 0 || k >= nHeads) throw InputError(where + ": head " + std::to_string(k) + " out of range [0, " + std::to_string(nHeads) + ")");
          heads[l].insert(static_cast<int>(k));
        }
      }
    }
    for (const auto& [layer, hs] : heads) {
      Intervention iv = base;
      iv.layer = static_cast<int>(layer);
      iv.heads.assign(hs.begin(), hs.end());
      out.push_back(std::move(iv));
    }
  }
  if (out.empty()) throw InputError("edit '" + spec + "': no intervention given");
  return out;
}

std::vector<HookHandle> install(HookedTransformer& model, const Intervention& iv) {
  const auto& c = model.config();
  if (iv.layer < 0 || iv.layer >= c.n_layers)
    throw InputError("layer " + std::to_string(iv.layer) + " out of range [0, " + std::to_string(c.n_layers) + ")");
  const std::vector<int> heads = targetQueryHeads(iv, c.n_heads, c.n_kv_heads);
  HookRegistry& hooks = model.hooks();
  std::vector<HookHandle> out;
  const int64_t window = c.slidingWindowAt(iv.layer);
  switch (iv.kind) {
    case InterventionKind::Zero:
      out.push_back(hooks.add(hooks.idOf(iv.layer, LayerHook::Z), [heads](at::Tensor& z, const HookContext&) { zeroHeads(z, heads); }));
      break;
    case InterventionKind::Scale: {
      double alpha = iv.alpha;
      out.push_back(hooks.add(hooks.idOf(iv.layer, LayerHook::Z), [heads, alpha](at::Tensor& z, const HookContext&) {
        if (alpha != 1.0) scaleHeads(z, heads, alpha);
      }));
      break;
    }
    case InterventionKind::Mean:
    case InterventionKind::Resample: {
      if (!iv.source.defined()) throw InputError(std::string(toString(iv.kind)) + " ablation needs source activations");
      at::Tensor src = iv.source;
      out.push_back(hooks.add(hooks.idOf(iv.layer, LayerHook::Z), [heads, src](at::Tensor& z, const HookContext& ctx) {
        at::Tensor s = src;
        // During KV-cache decoding only the new rows are present: pick their positions.
        if (s.dim() >= 3 && s.size(-3) > 1 && ctx.posOffset > 0 && s.size(-3) >= ctx.posOffset + z.size(1))
          s = s.narrow(-3, ctx.posOffset, z.size(1));
        replaceHeads(z, heads, s);
      }));
      break;
    }
    case InterventionKind::Uniform:
      out.push_back(hooks.add(hooks.idOf(iv.layer, LayerHook::Pattern), [heads, window](at::Tensor& p, const HookContext& ctx) {
        uniformPattern(p, heads, ctx.posOffset, window);
      }));
      break;
    case InterventionKind::ActRedistribute:
      if (iv.keys.empty()) {  // ACT as the paper runs it: each head's sinks found on this input, inside the forward
        const double beta = iv.alpha, threshold = iv.threshold;
        out.push_back(hooks.add(hooks.idOf(iv.layer, LayerHook::Pattern), [heads, beta, threshold](at::Tensor& p, const HookContext& ctx) {
          for (int64_t b = 0; b < p.size(0); ++b) {
            at::Tensor one = p.narrow(0, b, 1);  // a view: the edit lands in p
            for (int h : heads) {
              const auto sinks = actSinks(one, h, threshold, ctx.posOffset);
              if (!sinks.empty()) redistributeSinks(one, {h}, SinkRedistribution{sinks, beta, 0, -1, at::Tensor()});
            }
          }
        }));
        break;
      }
      [[fallthrough]];
    case InterventionKind::VarRedistribute: {
      const SinkRedistribution r{iv.keys, iv.alpha, iv.receiverBegin, iv.receiverEnd, iv.rows};
      out.push_back(hooks.add(hooks.idOf(iv.layer, LayerHook::Pattern), [heads, r](at::Tensor& p, const HookContext&) {
        redistributeSinks(p, heads, r);
      }));
      break;
    }
    case InterventionKind::Pasta: {
      auto keys = iv.keys;
      double alpha = iv.alpha;
      out.push_back(hooks.add(hooks.idOf(iv.layer, LayerHook::AttnScores), [heads, keys, alpha](at::Tensor& s, const HookContext&) {
        steerScores(s, heads, keys, alpha);
      }));
      break;
    }
  }
  return out;
}

std::vector<HookHandle> install(HookedTransformer& model, const std::vector<Intervention>& ivs) {
  std::vector<HookHandle> out;
  for (const auto& iv : ivs)
    for (auto& h : install(model, iv)) out.push_back(std::move(h));
  return out;
}

}  // namespace headlab
