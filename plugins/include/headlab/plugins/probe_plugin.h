// The versioned interface every probe implements. A probe is a folder under plugins/ that
// registers a factory; the GUI and CLI list probes from the registry, never by name.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace at {
class Tensor;
}
namespace headlab {
class HookedTransformer;
class Tokenizer;
class VisionLanguageModel;
}

namespace headlab::plugins {

constexpr const char* kProbePluginIid = "org.headlab.ProbePlugin/1.0";

struct ProbeParameter {
  std::string name;
  nlohmann::json defaultValue;
  std::string help;
};

// Reports progress in [0, 1] with a stage text; returning false asks the probe to stop
// (it then throws CancelledError).
using ProgressFn = std::function<bool(double fraction, const std::string& stage)>;

struct ProbeContext {
  HookedTransformer& model;  // for a vision-language model: its decoder
  const Tokenizer* tokenizer = nullptr;
  nlohmann::json params;  // defaults merged with the user's values
  ProgressFn progress;
  // Vision probes (vhd, look): the model and the preprocessed image [1, 3, size, size].
  VisionLanguageModel* vlm = nullptr;
  const at::Tensor* pixels = nullptr;
};

class Probe {
 public:
  virtual ~Probe() = default;
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  virtual std::vector<ProbeParameter> parameters() const = 0;
  // Returns the result as JSON: {"probe", "params", "grid": {"name", "layers", "heads", "values"}, ...}.
  virtual nlohmann::json run(ProbeContext& ctx) = 0;
};

using ProbeFactory = std::function<std::unique_ptr<Probe>()>;

// The registry the probe folders add themselves to.
class ProbeRegistry {
 public:
  static ProbeRegistry& instance();
  void add(const std::string& name, ProbeFactory f);
  std::vector<std::string> names() const;
  std::unique_ptr<Probe> create(const std::string& name) const;  // throws InputError for unknown names

 private:
  std::vector<std::pair<std::string, ProbeFactory>> m_factories;
};

}  // namespace headlab::plugins
