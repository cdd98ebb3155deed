#include "headlab/core/errors.h"
#include "headlab/plugins/probe_plugin.h"
#include "common/probe_util.h"

namespace headlab::plugins {

ProbeRegistry& ProbeRegistry::instance() {
  // The built-in probes, one folder each; a new probe adds its register function here.
  static ProbeRegistry r = [] {
    ProbeRegistry reg;
    registerSinksProbes(reg);
    registerMassiveProbe(reg);
    registerStreamingProbe(reg);
    registerInductionProbe(reg);
    registerRetrievalProbe(reg);
    registerVisionProbes(reg);
    return reg;
  }();
  return r;
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
