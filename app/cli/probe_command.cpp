// headlab-cli probe: runs any probe of the registry on the model, prints or writes its result.
#include <ATen/ATen.h>

#include <cstdio>
#include <cmath>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "headlab/core/errors.h"
#include "headlab/core/trace.h"
#include "headlab/plugins/probe_plugin.h"

namespace headlab::cli {

namespace {
// probe --out: the result's head grids with the parameters, as HDF5 or (--format) safetensors / npz.
void writeProbeResult(const Args& a, const headlab::ModelConfig& config, const headlab::LoadedModel& m, const std::string& name,
                      const nlohmann::json& result) {
  std::map<std::string, at::Tensor> arrays;
  for (const auto& [key, grid] : headlab::plugins::headGrids(result))
    arrays[key] = at::tensor(grid["values"].get<std::vector<double>>()).view({grid["layers"].get<int64_t>(), grid["heads"].get<int64_t>()});
  if (result.contains("per_prompt")) {  // [prompts, layers, heads]
    std::vector<double> flat;
    for (const auto& v : result["per_prompt"]["values"])
      for (const auto& x : v) flat.push_back(x.get<double>());
    const int64_t n = static_cast<int64_t>(result["per_prompt"]["values"].size());
    arrays["per_prompt_grid"] = at::tensor(flat).view({n, result["grid"]["layers"].get<int64_t>(), result["grid"]["heads"].get<int64_t>()});
  }
  if (outputFormat(a) != "hdf5") {
    writeArrayFile(a, config, m.source, m.format, "headlab.probe", arrays,
                   {{"probe", nlohmann::json(name).dump()}, {"params", result["params"].dump(-1, ' ', true)}});
    return;
  }
  headlab::TraceOptions opts = traceOptions(a);
  headlab::TraceWriter w(a.get("out"), opts);
  w.writeModel(config, m.source, m.format);
  w.writeProbe(name, result["params"], arrays);
  if (m.model) w.noteAttention(m.model->attentionUsed());
  w.commit();
}
// Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; 1.96 (the normal's) beyond.
double t95(int64_t df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                                 2.120,  2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  return df >= 1 && df <= 30 ? table[df - 1] : 1.96;
}

// probe --prompts-file: the probe once per prompt as well, so the result keeps each prompt's grid
// ("per_prompt") and reports the grid's mean over prompts with its standard deviation ("grid_std")
// and the half-width of a 95% t-interval ("grid_ci95"). A prompt the probe refuses on its own (too
// short, say) is listed under "skipped" with the reason.
void addPerPromptStatistics(headlab::plugins::Probe& probe, headlab::plugins::ProbeContext& ctx, nlohmann::json& result) {
  bool takesPrompts = false;
  for (const auto& p : probe.parameters()) takesPrompts |= p.name == "prompts";
  if (!takesPrompts) return;
  const nlohmann::json prompts = ctx.params["prompts"];
  std::vector<at::Tensor> grids;
  nlohmann::json used = nlohmann::json::array(), skipped = nlohmann::json::array();
  const auto& g = result["grid"];
  for (size_t i = 0; i < prompts.size(); ++i) {
    headlab::plugins::ProbeContext one = ctx;
    one.params["prompts"] = nlohmann::json::array({prompts[i]});
    one.progress = {};
    try {
      const nlohmann::json r = probe.run(one);
      grids.push_back(at::tensor(r["grid"]["values"].get<std::vector<double>>(), at::kDouble));
      used.push_back(i);
    } catch (const headlab::InputError& e) {
      skipped.push_back({{"prompt", i}, {"reason", e.what()}});
    }
    std::cerr << "\rprobe: per prompt " << i + 1 << "/" << prompts.size() << std::flush;
  }
  std::cerr << "\n";
  if (grids.empty()) return;
  const at::Tensor all = at::stack(grids);  // [prompts, layers * heads]
  const int64_t n = all.size(0);
  const at::Tensor sd = n > 1 ? all.std(0) : at::zeros({all.size(1)}, at::kDouble);
  const at::Tensor ci = sd * (t95(n - 1) / std::sqrt(static_cast<double>(n)));
  const auto grid = [&](const std::string& name, const at::Tensor& t) {
    return nlohmann::json{{"name", name}, {"layers", g["layers"]}, {"heads", g["heads"]}, {"values", std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel())}};
  };
  result["grid_mean_over_prompts"] = grid(g["name"].get<std::string>() + "_mean_over_prompts", all.mean(0).contiguous());
  result["grid_std"] = grid(g["name"].get<std::string>() + "_std", sd.contiguous());
  result["grid_ci95"] = grid(g["name"].get<std::string>() + "_ci95", ci.contiguous());
  nlohmann::json values = nlohmann::json::array();
  for (const auto& t : grids) values.push_back(std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel()));
  result["per_prompt"] = {{"grid", g["name"]}, {"prompts", used}, {"values", values}, {"skipped", skipped},
                          {"interval", n > 30 ? "95% normal (1.96 sd / sqrt n)" : "95% Student t (n - 1 degrees of freedom)"}};
}
}  // namespace

int cmdProbe(const Args& a) {
  auto& registry = headlab::plugins::ProbeRegistry::instance();
  if (a.has("list") || a.positional().empty()) {
    for (const auto& n : registry.names()) {
      auto p = registry.create(n);
      std::cout << n << ": " << p->description() << "\n";
      for (const auto& param : p->parameters())
        std::cout << "    " << param.name << " = " << param.defaultValue.dump() << "  (" << param.help << ")\n";
    }
    return a.positional().empty() && !a.has("list") ? 2 : 0;
  }
  const std::string name = a.positional()[0];
  auto probe = registry.create(name);
  // A LLaVA folder loads as a vision-language model: its decoder runs the text probes, and the
  // vision probes also get the tower and the image.
  // Without a tokenizer a vision-language model still runs prompts given as ids ("tokens").
  auto o = openAny(a, false);
  if (!o.vlm && !o.loaded.tokenizer) throw headlab::TokenizerError(o.loaded.source + ": no tokenizer found; pass --tokenizer");
  auto& m = o.loaded;
  auto& vlm = o.vlm;
  auto& pixels = o.pixels;
  headlab::HookedTransformer& model = o.model();
  const auto edits = installEdits(a, model);  // the probe measures the edited model
  nlohmann::json params = nlohmann::json::object();
  if (a.has("params")) {
    try {
      params = nlohmann::json::parse(a.get("params"));
    } catch (const nlohmann::json::exception&) {
      throw headlab::InputError("--params is not valid JSON: " + a.get("params"));
    }
    if (!params.is_object()) throw headlab::InputError("--params must be a JSON object, e.g. '{\"eps\": 0.3}'");
  }
  if (a.has("prompt")) params["prompt"] = a.get("prompt");
  if (a.has("prompts-file")) {
    std::ifstream in(a.get("prompts-file"));
    if (!in) throw headlab::IoError(a.get("prompts-file") + ": cannot open");
    nlohmann::json prompts = nlohmann::json::array();
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
    params["prompts"] = prompts;
  }
  headlab::plugins::ProbeContext ctx{model, m.tokenizer.get(), params, [](double f, const std::string& stage) {
                                       std::cerr << "\rprobe: " << static_cast<int>(f * 100) << "% " << stage << "        " << std::flush;
                                       return true;
                                     }};
  ctx.vlm = vlm.get();
  ctx.pixels = pixels.defined() ? &pixels : nullptr;
  nlohmann::json result = probe->run(ctx);
  std::cerr << "\n";
  if (a.has("prompts-file") && result.contains("grid")) addPerPromptStatistics(*probe, ctx, result);
  result["model"] = m.source;
  if (a.has("out")) writeProbeResult(a, model.config(), m, name, result);
  if (a.has("json") || !result.contains("grid")) {
    std::cout << (a.has("json") ? result.dump() : result.dump(2)) << "\n";
    return 0;
  }
  const auto& g = result["grid"];
  std::cout << name << ": " << g["name"].get<std::string>() << " (layers x heads)\n";
  const int64_t L = g["layers"], H = g["heads"];
  for (int64_t l = 0; l < L; ++l) {
    std::cout << "  L" << l << ":";
    for (int64_t h = 0; h < H; ++h) {
      char buf[16];
      std::snprintf(buf, sizeof buf, " %6.3f", g["values"][l * H + h].get<double>());
      std::cout << buf;
    }
    std::cout << "\n";
  }
  const std::string line = probe->summarize(result).line;
  if (!line.empty()) std::cout << name << ": " << line << "\n";
  if (result.contains("grid_ci95")) {
    const auto& mean = result["grid_mean_over_prompts"]["values"];
    const auto& ci = result["grid_ci95"]["values"];
    size_t best = 0;
    for (size_t k = 0; k < mean.size(); ++k)
      if (mean[k].get<double>() > mean[best].get<double>()) best = k;
    std::cout << name << ": over " << result["per_prompt"]["prompts"].size() << " prompts, L" << best / H << "H" << best % H << " = "
              << mean[best].get<double>() << " ± " << ci[best].get<double>() << " (95% interval; --json has each prompt's grid)\n";
  }
  return 0;
}

}  // namespace headlab::cli
