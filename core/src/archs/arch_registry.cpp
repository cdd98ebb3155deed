// The table of architectures: one row per family, each written in its arch_<family>.cpp. Loaders,
// messages and the vision-language decoder check all read it, so a new family is its file plus one
// entry here.
#include <algorithm>

#include "architectures.h"
#include "headlab/core/hf_export.h"

namespace headlab::arch {

const std::vector<ArchSpec>& architectures() {
  static const std::vector<ArchSpec> table = {gpt2Arch(), llamaArch(), qwen3Arch(), olmo2Arch(), gemmaArch(), phi3Arch(), neoxArch()};
  return table;
}

namespace {
bool contains(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

// "a, b, c" in table order, with `last` joined by " or " when given.
std::string join(std::vector<std::string> names, const std::string& last) {
  if (!last.empty()) names.push_back(last);
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return s;
}
}  // namespace

const ArchSpec* findHfArch(const std::string& modelType) {
  for (const auto& a : architectures())
    if (contains(a.hfModelTypes, modelType)) return &a;
  return nullptr;
}

const ArchSpec* findGgufArch(const std::string& ggufArch) {
  for (const auto& a : architectures())
    if (a.configFromGguf && contains(a.ggufArchs, ggufArch)) return &a;
  return nullptr;
}

bool isLlamaFamily(const std::string& modelType) {
  const ArchSpec* a = findHfArch(modelType);
  return a && a->family == std::string("llama");
}

std::string hfModelTypeList(const std::string& family, const std::string& alsoAccepted) {
  std::vector<std::string> names;
  for (const auto& a : architectures())
    if (family.empty() || family == a.family) names.insert(names.end(), a.hfModelTypes.begin(), a.hfModelTypes.end());
  return join(names, alsoAccepted);
}

std::string ggufArchList() {
  std::vector<std::string> names;
  for (const auto& a : architectures()) names.insert(names.end(), a.ggufArchs.begin(), a.ggufArchs.end());
  return join(names, "");
}

void refuseUnimplemented(const nlohmann::json& cfg, const std::vector<MathsKey>& keys, const std::string& where) {
  for (const auto& k : keys) {
    if (!cfg.contains(k.key) || cfg[k.key].is_null() || cfg[k.key] == k.harmless) continue;
    throw ConfigError(where + ": " + k.key + " = " + cfg[k.key].dump() + " changes the computation and is not implemented (" +
                      k.why + "); refusing rather than computing something else");
  }
}

}  // namespace headlab::arch

namespace headlab {

std::map<std::string, at::Tensor> hfTensors(const ModelConfig& c, const ModelWeights& w) {
  const arch::ArchSpec* spec = arch::findHfArch(c.arch);
  if (!spec || !spec->weightsToHf)
    throw ConfigError("writing model_type '" + c.arch + "' under Hugging Face names is not implemented (supported: " +
                      arch::hfModelTypeList() + ")");
  return spec->weightsToHf(c, w);
}

std::map<std::string, at::Tensor> llavaHfTensors(const VisionLanguageModel& m) {
  arch::TensorMap out;
  arch::clipTensors(m.vision().weights(), m.embeddings(), m.visionConfig(), "vision_tower.vision_model.", out);
  arch::llavaProjectorTensors(m.projector(), "multi_modal_projector.", out);
  for (auto& [name, t] : hfTensors(m.language().config(), m.language().weights())) out["language_model." + name] = t;
  return out;
}

}  // namespace headlab
