#include "headlab/core/errors.h"
#include "headlab/plugins/probe_plugin.h"
#include "common/probe_util.h"

namespace headlab::plugins {

// The registration functions of the probe folders, declared and called in the generated file.
#include "probe_registrations.inc"

ProbeRegistry& ProbeRegistry::instance() {
  static ProbeRegistry r = [] {
    ProbeRegistry reg;
    registerEveryProbeFolder(reg);
    return reg;
  }();
  return r;
}

std::vector<std::pair<std::string, nlohmann::json>> headGrids(const nlohmann::json& result) {
  std::vector<std::pair<std::string, nlohmann::json>> out;
  auto isGrid = [](const nlohmann::json& v) {
    return v.is_object() && v.contains("values") && v.contains("layers") && v.contains("heads") && v["values"].is_array();
  };
  if (result.contains("grid") && isGrid(result["grid"])) out.emplace_back("grid", result["grid"]);
  for (auto& [key, value] : result.items())
    if (key != "grid" && isGrid(value)) out.emplace_back(key, value);
  return out;
}

ProbeSummary Probe::summarize(const nlohmann::json& result) const {
  ProbeSummary s;
  if (result.contains("grid")) s.line = "largest " + result["grid"]["name"].get<std::string>() + ": " + bestHeadText(result["grid"]);
  return s;
}

void ProbeRegistry::add(const std::string& name, ProbeFactory f) { m_factories.emplace_back(name, std::move(f)); }

std::vector<std::string> ProbeRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [n, f] : m_factories) out.push_back(n);
  return out;
}

std::unique_ptr<Probe> ProbeRegistry::create(const std::string& name) const {
  for (const auto& [n, f] : m_factories)
    if (n == name) return f();
  std::string known;
  for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
  throw InputError("unknown probe '" + name + "' (available: " + (known.empty() ? "none yet" : known) + ")");
}

}  // namespace headlab::plugins
