#include "headlab/core/errors.h"
#include "headlab/plugins/probe_plugin.h"

namespace headlab::plugins {

ProbeRegistry& ProbeRegistry::instance() {
  static ProbeRegistry r;
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
