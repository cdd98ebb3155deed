// Vision-aware heads (PROBES.md §4) on LLaVA-style models.
//  vhd:  VHD[l,h] = distance(z[l,h](image + text), z[l,h](text only)) at the current generation
//        position (He et al. 2025), the outlier filter on "negatively vision-sensitive" heads,
//        T-VHD per generated token, and the VHR reinforcement (alpha on heads above the layer
//        median, chosen layer by layer at the first generation step on already reinforced states).
//  var:  visual sink tokens (RMS-normalised hidden state above tau on some dimension), image-centric
//        heads, and VAR: attention to the sinks scaled by p, the freed mass to the other image tokens.
//  look: attention from a query position to the image tokens, per head, and as a map over the
//        patch grid at one layer, optionally relative to a general-description prompt (Zhang et al.).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "../common/probe_util.h"
#include "vision_scoring.h"
#include "headlab/core/errors.h"
#include "headlab/core/interventions.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"

namespace headlab::plugins {

namespace {

VisionLanguageModel& requireVlm(ProbeContext& ctx, const std::string& probe) {
  if (!ctx.vlm || !ctx.pixels || !ctx.pixels->defined())
    throw InputError("probe " + probe + " needs a vision-language model (LLaVA folder) and an image (--image)");
  return *ctx.vlm;
}

// The prompt's ids, with the image placeholder after BOS when the prompt has none.
std::vector<int64_t> promptIds(ProbeContext& ctx, const nlohmann::json& p, const std::string& key) {
  const int64_t image = ctx.vlm->visionConfig().image_token_id;
  std::vector<int64_t> ids;
  if (key == "prompt" && p["tokens"].is_array() && !p["tokens"].empty()) {
    ids = p["tokens"].get<std::vector<int64_t>>();
  } else {
    if (!ctx.tokenizer) throw InputError("no tokenizer: pass the prompt as token ids (\"tokens\")");
    ids = ctx.tokenizer->encode(p[key].get<std::string>(), true);
  }
  return withImagePlaceholder(std::move(ids), image, ctx.tokenizer ? ctx.tokenizer->bos() : -1);
}

void appendToken(VisionLanguageModel& vlm, VlmInput& in, int64_t id) {
  const int64_t T = static_cast<int64_t>(in.ids.size());
  in.embeds = at::cat({in.embeds, vlm.language().embed(at::tensor(std::vector<int64_t>{id}, at::kLong).unsqueeze(0), T)}, 1);
  in.ids.push_back(id);
}

// hook_z of every layer at the last position, [layers, heads, d_head], and the last logits.
std::pair<at::Tensor, at::Tensor> lastZ(VisionLanguageModel& vlm, const VlmInput& in) {
  HookedTransformer& m = vlm.language();
  const int64_t L = m.config().n_layers;
  std::vector<at::Tensor> zs(static_cast<size_t>(L));
  std::vector<HookHandle> hs;
  for (int l = 0; l < L; ++l)
    hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Z),
                               [&zs, l](at::Tensor& z, const HookContext&) { zs[l] = z[0][-1].to(at::kCPU, at::kFloat); }));
  at::Tensor logits = vlm.forward(in)[0][-1].to(at::kCPU, at::kFloat);
  return {at::stack(zs), logits};
}

at::Tensor distance(const at::Tensor& a, const at::Tensor& b, const std::string& kind) {
  if (kind == "l2") return (a - b).norm(2, -1);
  if (kind == "cosine") return 1.0 - at::cosine_similarity(a, b, -1, 1e-12);
  if (kind == "relative") return (a - b).norm(2, -1) / b.norm(2, -1).clamp_min(1e-12);
  throw InputError("distance must be l2, cosine or relative, got '" + kind + "'");
}

struct VhdResult {
  at::Tensor raw, filtered, ta, logits;  // [L, H] x3, [vocab]
};

}  // namespace

std::string applyTemplate(const std::string& tmpl, const std::string& prompt) {
  const auto at = tmpl.find("{prompt}");
  if (at == std::string::npos) throw InputError("the template has no {prompt}: '" + tmpl + "'");
  return std::string(tmpl).replace(at, 8, prompt);
}

std::string conversationTemplate(const Tokenizer* tokenizer, int64_t imageToken, const std::string& requested) {
  if (requested != "auto") {
    applyTemplate(requested, "");  // refuses a template without {prompt}
    return requested;
  }
  if (!tokenizer) return "{prompt}";
  const std::string roles = tokenizer->decode(tokenizer->encode("USER: x ASSISTANT:", false));
  const std::vector<int64_t> image = tokenizer->encode("<image>", false);
  const bool spells = roles.find("USER:") != std::string::npos && roles.find("ASSISTANT:") != std::string::npos &&
                      std::find(image.begin(), image.end(), imageToken) != image.end();
  return spells ? kLlavaV1Template : "{prompt}";
}

at::Tensor vhdOutliers(const at::Tensor& vhd, const at::Tensor& ta) {
  auto aboveLayerMeanPlusStd = [](const at::Tensor& x) { return x > x.mean(1, true) + x.std(1, /*unbiased=*/false, /*keepdim=*/true); };
  return aboveLayerMeanPlusStd(vhd).logical_and(aboveLayerMeanPlusStd(ta));
}

namespace {
VhdResult vhdAt(VisionLanguageModel& vlm, const VlmInput& image, const VlmInput& counterfactual, const nlohmann::json& p) {
  auto [zi, logits] = lastZ(vlm, image);
  auto [zt, unused] = lastZ(vlm, counterfactual);
  VhdResult r;
  r.raw = distance(zi, zt, p["distance"]).to(at::kDouble);
  r.ta = zt.pow(2).sum(-1).to(at::kDouble);
  r.filtered = r.raw.clone();
  if (p["outlier_filter"].get<bool>()) r.filtered.masked_fill_(vhdOutliers(r.raw, r.ta), 0.0);
  r.logits = logits;
  return r;
}

// The most likely next token of `logits` as {"id", "token"}.
nlohmann::json topToken(const ProbeContext& ctx, const at::Tensor& logits) {
  const int64_t id = logits.argmax().item<int64_t>();
  return {{"id", id}, {"token", ctx.tokenizer ? ctx.tokenizer->tokenString(id) : std::to_string(id)}};
}

double tvhd(const at::Tensor& vhd, int64_t k) {
  k = std::min<int64_t>(k, vhd.size(1));
  return std::get<0>(vhd.topk(k, 1)).sum().item<double>();
}

class VhdProbe : public Probe {
 public:
  bool needsImage() const override { return true; }
  std::string name() const override { return "vhd"; }
  std::string description() const override {
    return "Vision-aware head divergence: ||z(image + text) - z(text only)|| per head at the generation position, T-VHD per "
           "generated token, and VHR (alpha = 2 on heads above the layer median).";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"prompt", "Describe the image.", "text prompt; the image goes after BOS unless it holds the image token"},
            {"tokens", nlohmann::json::array(), "the prompt as token ids instead (may hold the image token)"},
            {"template", "auto", "conversation template with {prompt} (auto = LLaVA-1.5's USER/ASSISTANT conversation when the "
                                 "tokenizer spells it, else the bare prompt)"},
            {"distance", "l2", "l2, cosine or relative (||a - b|| / ||b||)"},
            {"outlier_filter", true, "zero heads with VHD > mean_l + std_l and TA > mean_l + std_l (per layer, Eq. 6)"},
            {"counterfactual", "text_only", "text_only (the paper) or same (the image run again: VHD must be 0)"},
            {"generate", 0, "greedy tokens to generate, with T-VHD for each"},
            {"topk", 3, "k of T-VHD = sum over layers of the top-k heads"},
            {"vhr", false, "apply VHR and report its effect"},
            {"vhr_alpha", 2.0, "VHR scale on the selected heads"},
            {"vhr_layers", nlohmann::json::array(), "layers VHR reinforces (empty = the second layer and the last 14)"}};
  }
  ProbeSummary summarize(const nlohmann::json& r) const override {
    return {formatText("top vision-aware head %s, %lld filtered as outliers", bestHeadText(r["grid"]).c_str(),
                       r["filtered_heads"].get<long long>()),
            {}};
  }

  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    VisionLanguageModel& vlm = requireVlm(ctx, name());
    c10::InferenceMode guard;
    const std::string cf = p["counterfactual"];
    if (cf != "text_only" && cf != "same") throw InputError("counterfactual must be text_only or same, got '" + cf + "'");
    const std::string tmpl = conversationTemplate(ctx.tokenizer, vlm.visionConfig().image_token_id, p["template"]);
    nlohmann::json templated = p;
    templated["prompt"] = applyTemplate(tmpl, p["prompt"]);
    std::vector<int64_t> ids = promptIds(ctx, templated, "prompt");
    reportProgress(ctx, 0.0, "image and text-only runs");
    VlmInput image = vlm.prepare(ids, *ctx.pixels);
    VlmInput text = cf == "same" ? image : vlm.prepare(ids, at::Tensor());
    VhdResult first = vhdAt(vlm, image, text, p);
    nlohmann::json out = {{"probe", name()},
                          {"params", p},
                          {"image_span", {image.imageBegin, image.imageEnd}},
                          {"template_used", p["tokens"].empty() ? nlohmann::json(tmpl) : nlohmann::json(nullptr)},
                          {"prompt_ids", ids},
                          {"grid", gridJson("vhd", first.filtered)},
                          {"vhd_raw", gridJson("vhd_raw", first.raw)},
                          {"ta", gridJson("ta", first.ta)},
                          {"filtered_heads", (first.raw != first.filtered).sum().item<int64_t>()}};
    const int64_t k = p["topk"];
    const int64_t steps = p["generate"];
    nlohmann::json tokens = nlohmann::json::array();
    VlmInput gi = image, gt = text;
    VhdResult cur = first;
    for (int64_t s = 0; s < steps; ++s) {
      reportProgress(ctx, 0.1 + 0.5 * s / std::max<int64_t>(1, steps), "T-VHD, token " + std::to_string(s + 1));
      if (s > 0) cur = vhdAt(vlm, gi, gt, p);
      const int64_t next = cur.logits.argmax().item<int64_t>();
      tokens.push_back({{"id", next}, {"token", ctx.tokenizer ? ctx.tokenizer->tokenString(next) : std::to_string(next)},
                        {"t_vhd", tvhd(cur.filtered, k)}});
      if (static_cast<int64_t>(gi.ids.size()) + 1 > vlm.language().config().n_ctx) break;
      appendToken(vlm, gi, next);
      appendToken(vlm, gt, next);
    }
    out["t_vhd"] = tokens;
    if (p["vhr"].get<bool>()) out["vhr"] = reinforce(ctx, vlm, image, text, p, first.logits);
    reportProgress(ctx, 1.0, "done");
    return out;
  }

 private:
  // VHR: heads chosen layer by layer at the first generation step, each layer's VHD measured on
  // states the earlier layers' reinforcement already changed.
  nlohmann::json reinforce(ProbeContext& ctx, VisionLanguageModel& vlm, const VlmInput& image, const VlmInput& text,
                           const nlohmann::json& p, const at::Tensor& before) {
    const int64_t L = vlm.language().config().n_layers;
    std::vector<int64_t> layers = p["vhr_layers"].get<std::vector<int64_t>>();
    if (layers.empty()) {
      if (L > 1) layers.push_back(1);
      for (int64_t l = std::max<int64_t>(2, L - 14); l < L; ++l) layers.push_back(l);
    }
    std::sort(layers.begin(), layers.end());
    layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
    for (int64_t l : layers)
      if (l < 0 || l >= L) throw InputError("vhr_layers: layer " + std::to_string(l) + " out of range [0, " + std::to_string(L) + ")");
    const double alpha = p["vhr_alpha"];
    std::vector<Intervention> ivs;
    nlohmann::json chosen = nlohmann::json::array();
    for (size_t i = 0; i < layers.size(); ++i) {
      reportProgress(ctx, 0.6 + 0.35 * i / layers.size(), "VHR, layer " + std::to_string(layers[i]));
      auto handles = install(vlm.language(), ivs);
      at::Tensor row = vhdAt(vlm, image, text, p).filtered[layers[i]];
      const double median = row.median().item<double>();
      Intervention iv{InterventionKind::Scale, static_cast<int>(layers[i]), {}};
      iv.alpha = alpha;
      for (int64_t h = 0; h < row.size(0); ++h)
        if (row[h].item<double>() > median) iv.heads.push_back(static_cast<int>(h));
      chosen.push_back({{"layer", layers[i]}, {"heads", iv.heads}});
      if (!iv.heads.empty()) ivs.push_back(iv);
    }
    auto handles = install(vlm.language(), ivs);
    at::Tensor after = lastZ(vlm, image).second;
    return {{"alpha", alpha},
            {"layers", layers},
            {"heads", chosen},
            {"next_token_before", topToken(ctx, before)},
            {"next_token_after", topToken(ctx, after)},
            {"max_abs_logit_change", (after - before).abs().max().item<double>()}};
  }
};

// VAR (Kang et al., ICLR 2025, MICV-yonsei/VisAttnSink: src/logic/logic.py, src/model/llava.py). Three
// steps per layer, inside one forward ("online": layer l sees the earlier layers already redistributed):
// DimProspector marks a token as a sink when its RMS-normalised resid_pre exceeds tau in absolute value on
// one of the sink dimensions (from first_layer on); HeadFork marks the image-centric rows of each head:
// rows after the image with attention on the image >= summ and on the visual sinks <= rho of it (the
// reference's portion, with its 1e-6 per image key); VAR scales every sink's attention (visual and text)
// in those rows by p and gives the freed mass to the image's non-sink keys in proportion. Layers without a
// visual sink are left alone, and the last layer is skipped (except_last_layer). The reference hard-codes
// each model's sink dimensions (LLaMA-2-7B: 2533 and 1415, where BOS carries its massive activations);
// HeadLab finds them the same way, as the dimensions where the first token exceeds tau, unless given.
class VarProbe : public Probe {
 public:
  bool needsImage() const override { return true; }
  std::string name() const override { return "var"; }
  std::string description() const override {
    return "Visual attention sinks and VAR (Kang et al.): sink tokens per layer (on the sink dimensions), image-centric heads "
           "(sink portion <= rho, image attention >= 0.2) and the effect of redistributing their sink attention (p = 0.6).";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"prompt", "Describe the image.", "text prompt; the image goes after BOS unless it holds the image token"},
            {"tokens", nlohmann::json::array(), "the prompt as token ids instead (may hold the image token)"},
            {"tau", 20.0, "a token is a sink when its RMS-normalised hidden state exceeds tau on a sink dimension"},
            {"sink_dims", nlohmann::json::array(), "sink dimensions (empty = those where the first token exceeds tau; LLaMA-2-7B: [2533, 1415])"},
            {"rho", 0.5, "image-centric: attention on visual sinks / attention on the image <= rho"},
            {"min_image_attention", 0.2, "image-centric: attention on the image >= this (summ)"},
            {"p", 0.6, "VAR keeps this fraction of the attention to sinks"},
            {"first_layer", 2, "sinks are found and attention redistributed from this layer on (the reference's layers[2:])"},
            {"except_last_layer", true, "leave the last layer alone, as the reference's configuration does"},
            {"online", true, "select at each layer inside the redistributed forward (false: on the unedited forward)"}};
  }
  ProbeSummary summarize(const nlohmann::json& r) const override {
    return {formatText("most image-centric rows %s; next token %s -> %s", bestHeadText(r["grid"]).c_str(),
                       r["next_token_before"]["token"].get<std::string>().c_str(), r["next_token_after"]["token"].get<std::string>().c_str()),
            {}};
  }

  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    VisionLanguageModel& vlm = requireVlm(ctx, name());
    c10::InferenceMode guard;
    HookedTransformer& m = vlm.language();
    const int64_t L = m.config().n_layers, H = m.config().n_heads, D = m.config().d_model;
    VlmInput in = vlm.prepare(promptIds(ctx, p, "prompt"), *ctx.pixels);
    Selection sel{p["tau"], p["rho"], p["min_image_attention"], p["p"], in.imageBegin, in.imageEnd, {}};
    const int64_t firstLayer = p["first_layer"];
    if (firstLayer < 0) throw InputError("var: first_layer must be >= 0, got " + std::to_string(firstLayer));
    const bool exceptLast = p["except_last_layer"], online = p["online"];
    auto finds = [&](int64_t l) { return l >= firstLayer; };
    auto edits = [&](int64_t l) { return l >= firstLayer && !(exceptLast && l == L - 1); };
    // The unedited forward: the next-token logits and, unless given, the sink dimensions.
    sel.dims = p["sink_dims"].get<std::vector<int64_t>>();
    for (int64_t d : sel.dims)
      if (d < 0 || d >= D) throw InputError("var: sink dimension " + std::to_string(d) + " out of range [0, " + std::to_string(D) + ")");
    const bool discover = sel.dims.empty();
    at::Tensor before = unedited(vlm, in, discover ? firstLayer : L, sel);
    // Selections per layer: made inside the redistributed forward (online), or on the unedited one.
    std::vector<LayerSelection> layers(static_cast<size_t>(L));
    auto selectionHooks = [&](bool apply) {
      std::vector<HookHandle> hs;
      for (int l = 0; l < L; ++l) {
        if (!finds(l)) continue;
        hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::ResidPre), [&, l](at::Tensor& h, const HookContext&) {
          layers[l].findSinks(normalisedMagnitude(h), sel);
        }));
        if (!edits(l)) continue;
        hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Pattern), [&, l, apply](at::Tensor& pat, const HookContext&) {
          layers[l].forkHeads(pat, sel);
          if (apply) layers[l].redistribute(pat, sel);
        }));
      }
      return hs;
    };
    at::Tensor after;
    if (online) {
      auto hs = selectionHooks(true);
      after = vlm.forward(in)[0][-1].to(at::kCPU, at::kFloat);
    } else {
      {
        auto hs = selectionHooks(false);
        vlm.forward(in);
      }
      std::vector<HookHandle> hs;
      for (int l = 0; l < L; ++l)
        if (edits(l))
          hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Pattern), [&, l](at::Tensor& pat, const HookContext&) { layers[l].redistribute(pat, sel); }));
      after = vlm.forward(in)[0][-1].to(at::kCPU, at::kFloat);
    }
    at::Tensor perHead = at::zeros({L, H}, at::kDouble);
    nlohmann::json sinkJson = nlohmann::json::array();
    for (int64_t l = 0; l < L; ++l) {
      if (layers[l].centric.defined()) perHead[l] = layers[l].centric[0].sum(-1).to(at::kCPU, at::kDouble);
      sinkJson.push_back({{"layer", l}, {"sink_tokens", layers[l].visual}, {"text_sink_tokens", layers[l].text}});
    }
    return {{"probe", name()},
            {"params", p},
            {"image_span", {in.imageBegin, in.imageEnd}},
            {"sink_dims", sel.dims},
            {"sink_dims_discovered", discover},
            {"sinks", sinkJson},
            {"grid", gridJson("image_centric_rows", perHead)},
            {"next_token_before", topToken(ctx, before)},
            {"next_token_after", topToken(ctx, after)},
            {"max_abs_logit_change", (after - before).abs().max().item<double>()}};
  }

 private:
  struct Selection {
    double tau, rho, summ, keep;
    int64_t imageBegin, imageEnd;
    std::vector<int64_t> dims;
  };
  // One layer's sinks (DimProspector) and image-centric rows (HeadFork), and VAR's edit of its pattern.
  struct LayerSelection {
    std::vector<int64_t> visual, text;
    at::Tensor centric;  // [1, head, query] bool; undefined: no visual sink, the layer is left alone

    void findSinks(const at::Tensor& magnitude, const Selection& s) {  // magnitude [pos, d_model]
      visual.clear(), text.clear();
      if (s.dims.empty()) return;
      at::Tensor peak = std::get<0>(magnitude.index_select(1, at::tensor(s.dims, at::kLong)).max(-1));  // [pos]
      for (int64_t i = 0; i < peak.size(0); ++i)
        if (peak[i].item<double>() > s.tau) (i >= s.imageBegin && i < s.imageEnd ? visual : text).push_back(i);
    }
    void forkHeads(const at::Tensor& pattern, const Selection& s) {
      centric = at::Tensor();
      if (visual.empty()) return;
      at::Tensor a = pattern.to(at::kCPU, at::kFloat);  // [1, H, T, T]
      const int64_t T = a.size(2);
      at::Tensor image = a.slice(3, s.imageBegin, s.imageEnd);
      at::Tensor onSinks = a.index_select(3, at::tensor(visual, at::kLong)).sum(-1);
      at::Tensor portion = onSinks / (image + 1e-6).sum(-1);
      at::Tensor rowsAfter = (at::arange(T) >= s.imageEnd).view({1, 1, T});
      centric = (portion <= s.rho).logical_and(image.sum(-1) >= s.summ).logical_and(rowsAfter);
    }
    void redistribute(at::Tensor& pattern, const Selection& s) const {
      if (!centric.defined() || !centric.any().item<bool>()) return;
      std::vector<int> everyHead(static_cast<size_t>(pattern.size(1)));
      std::iota(everyHead.begin(), everyHead.end(), 0);
      std::vector<int64_t> sinks = visual;
      sinks.insert(sinks.end(), text.begin(), text.end());  // VAR scales both kinds
      redistributeSinks(pattern, everyHead, SinkRedistribution{sinks, s.keep, s.imageBegin, s.imageEnd, centric});
    }
  };
  // The unedited forward's next-token logits; from layer `from` on, the dimensions where the first token's
  // normalised hidden state exceeds tau become the sink dimensions (sel.dims).
  static at::Tensor unedited(VisionLanguageModel& vlm, const VlmInput& in, int64_t from, Selection& sel) {
    HookedTransformer& m = vlm.language();
    std::set<int64_t> found;
    std::vector<HookHandle> hs;
    for (int l = static_cast<int>(from); l < m.config().n_layers; ++l)
      hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::ResidPre), [&](at::Tensor& h, const HookContext&) {
        at::Tensor first = normalisedMagnitude(h)[0];  // the first token [d_model]
        for (int64_t d = 0; d < first.size(0); ++d)
          if (first[d].item<double>() > sel.tau) found.insert(d);
      }));
    at::Tensor logits = vlm.forward(in)[0][-1].to(at::kCPU, at::kFloat);
    if (from < m.config().n_layers) sel.dims.assign(found.begin(), found.end());
    return logits;
  }
  // |RMSNorm(h)| without a weight, in float32 as the reference's DimProspector: [pos, d_model].
  static at::Tensor normalisedMagnitude(const at::Tensor& h) {
    at::Tensor x = h[0].to(at::kCPU, at::kFloat);
    return (x * at::rsqrt(x.pow(2).mean(-1, true) + 1e-6)).abs();
  }
};

constexpr int64_t kLookDefaultLayer = 14;  // mllms_know's layer for LLaVA-1.5 7B

class LookProbe : public Probe {
 public:
  bool needsImage() const override { return true; }
  std::string name() const override { return "look"; }
  std::string description() const override {
    return "Where the model looks: attention from a query position to the image tokens per head, and a map over the patch "
           "grid at one layer (head average), optionally relative to a general-description prompt.";
  }
  std::vector<ProbeParameter> parameters() const override {
    return {{"prompt", "What is in the image?", "text prompt; the image goes after BOS unless it holds the image token"},
            {"tokens", nlohmann::json::array(), "the prompt as token ids instead (may hold the image token)"},
            {"query", -1, "query position (-1 = the last)"},
            {"layer", kLookDefaultLayer, "layer of the map (default 14, as mllms_know reads LLaVA-1.5; the default is clamped to the model's last layer; -1 = the middle layer)"},
            {"general_prompt", "Write a general description of the image.", "divide the map by this prompt's map (empty = off)"},
            {"template", "auto", "conversation template with {prompt}, applied to the prompt and the general prompt alike (auto = "
                                 "LLaVA-1.5's USER/ASSISTANT conversation when the tokenizer spells it, else the bare prompt)"}};
  }
  ProbeSummary summarize(const nlohmann::json& r) const override {
    return {formatText("image attention at layer %lld; most on the image: %s", r["map"]["layer"].get<long long>(),
                       bestHeadText(r["grid"]).c_str()),
            {}};
  }

  nlohmann::json run(ProbeContext& ctx) override {
    nlohmann::json p = mergeParams(*this, ctx.params);
    VisionLanguageModel& vlm = requireVlm(ctx, name());
    c10::InferenceMode guard;
    const auto& c = vlm.language().config();
    int64_t layer = p["layer"];
    if (layer < 0) layer = c.n_layers / 2;
    // The default (14, also when the GUI passes the defaults back) fits any model; another value must exist.
    if (layer == kLookDefaultLayer) layer = std::min<int64_t>(layer, c.n_layers - 1);
    if (layer >= c.n_layers) throw InputError("layer " + std::to_string(layer) + " out of range [0, " + std::to_string(c.n_layers) + ")");
    const std::string tmpl = conversationTemplate(ctx.tokenizer, vlm.visionConfig().image_token_id, p["template"]);
    auto templated = [&tmpl](const std::string& text) { return applyTemplate(tmpl, text); };
    reportProgress(ctx, 0.0, "prompt");
    nlohmann::json qp = p;
    qp["prompt"] = templated(p["prompt"]);
    auto [grid, map, span] = imageAttention(ctx, vlm, promptIds(ctx, qp, "prompt"), p["query"], layer);
    const int64_t n = map.size(0);
    const int64_t side = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
    nlohmann::json out = {{"probe", name()},
                          {"params", p},
                          {"image_span", {span.first, span.second}},
                          {"grid", gridJson("image_attention", grid)},
                          {"template_used", p["tokens"].empty() ? nlohmann::json(tmpl) : nlohmann::json(nullptr)},
                          {"map", {{"layer", layer}, {"side", side * side == n ? side : 0}, {"values", toVector(map)}}},
                          {"prompt_text", p["tokens"].empty() ? qp["prompt"] : nlohmann::json(nullptr)}};
    const std::string general = p["general_prompt"];
    if (!general.empty() && ctx.tokenizer) {
      reportProgress(ctx, 0.5, "general-description prompt");
      nlohmann::json gp = p;
      gp["prompt"] = templated(general);
      gp["tokens"] = nlohmann::json::array();  // the general prompt is text, whatever the question was given as
      out["general_prompt_text"] = gp["prompt"];
      auto g = imageAttention(ctx, vlm, promptIds(ctx, gp, "prompt"), -1, layer);
      out["relative_map"] = {{"layer", layer}, {"values", toVector(map / std::get<1>(g).clamp_min(1e-12))}};
    }
    reportProgress(ctx, 1.0, "done");
    return out;
  }

 private:
  static std::vector<double> toVector(const at::Tensor& t) {
    at::Tensor d = t.to(at::kCPU, at::kDouble).contiguous();  // results may live on the GPU
    return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  }
  // [layers, heads] attention mass on the image tokens, the head-averaged [image tokens] map at
  // `layer`, and the image span, from query row `query` (-1 = last).
  std::tuple<at::Tensor, at::Tensor, std::pair<int64_t, int64_t>> imageAttention(ProbeContext& ctx, VisionLanguageModel& vlm,
                                                                                  const std::vector<int64_t>& ids, int64_t query,
                                                                                  int64_t layer) {
    VlmInput in = vlm.prepare(ids, *ctx.pixels);
    const int64_t T = static_cast<int64_t>(in.ids.size());
    if (query < 0) query += T;
    if (query < 0 || query >= T) throw InputError("query position out of range [0, " + std::to_string(T) + ")");
    HookedTransformer& m = vlm.language();
    const int64_t L = m.config().n_layers;
    std::vector<at::Tensor> rows(static_cast<size_t>(L));
    std::vector<HookHandle> hs;
    for (int l = 0; l < L; ++l)
      hs.push_back(m.hooks().add(m.hooks().idOf(l, LayerHook::Pattern), [&rows, l, query](at::Tensor& pat, const HookContext&) {
        rows[l] = pat[0].select(1, query).to(at::kCPU, at::kFloat);  // [head, key]
      }));
    vlm.forward(in);
    at::Tensor image = at::stack(rows).slice(2, in.imageBegin, in.imageEnd);  // [L, H, image tokens]
    at::Tensor map = image[layer].mean(0);
    if (!vlm.visionConfig().drop_class_token) map = map.slice(0, 1);  // the class token is not on the grid
    return {image.sum(-1).to(at::kDouble), map, {in.imageBegin, in.imageEnd}};
  }
};

}  // namespace

void registerProbes_vision(ProbeRegistry& r) {
  r.add("vhd", [] { return std::make_unique<VhdProbe>(); });
  r.add("var", [] { return std::make_unique<VarProbe>(); });
  r.add("look", [] { return std::make_unique<LookProbe>(); });
}

}  // namespace headlab::plugins
