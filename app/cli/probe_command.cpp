// headlab-cli probe: runs any probe of the registry on the model, prints or writes its result.
#include <ATen/ATen.h>

#include <cstdio>
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
  return 0;
}

}  // namespace headlab::cli
