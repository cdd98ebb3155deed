// The versioned interface every probe implements. A probe is a folder under plugins/ that
// registers a factory; the GUI and CLI list probes from the registry, never by name.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "headlab/core/progress.h"

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
// (it then throws CancelledError). The same type as every other long operation's.
using ProgressFn = headlab::Progress;

struct ProbeContext {
  HookedTransformer& model;  // for a vision-language model: its decoder
  const Tokenizer* tokenizer = nullptr;
  nlohmann::json params;  // defaults merged with the user's values
  ProgressFn progress;
  // Vision probes (vhd, look): the model and the preprocessed image [1, 3, size, size].
  VisionLanguageModel* vlm = nullptr;
  const at::Tensor* pixels = nullptr;
};

// A curve a result holds (Sink_k over k, accuracy over needle depth), drawn by the window.
struct ProbeCurve {
  std::string title, xLabel, yLabel;
  std::vector<double> x, y;
};

// What the window, the CLI and the report show of any probe's result without knowing the probe:
// one line and its curves. The head grids are read generically (headGrids).
struct ProbeSummary {
  std::string line;
  std::vector<ProbeCurve> curves;
};

// Every [layers, heads] grid of a result, top level first ("grid" first): key and the grid JSON
// {"name", "layers", "heads", "values"}.
std::vector<std::pair<std::string, nlohmann::json>> headGrids(const nlohmann::json& result);

class Probe {
 public:
  virtual ~Probe() = default;
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  virtual std::vector<ProbeParameter> parameters() const = 0;
  // Returns the result as JSON: {"probe", "params", "grid": {"name", "layers", "heads", "values"}, ...}.
  virtual nlohmann::json run(ProbeContext& ctx) = 0;
  // The headline of a result this probe returned. The default names the largest cell of "grid".
  virtual ProbeSummary summarize(const nlohmann::json& result) const;
  // A vision probe runs on a vision-language model and its image (ctx.vlm, ctx.pixels).
  virtual bool needsImage() const { return false; }
};

using ProbeFactory = std::function<std::unique_ptr<Probe>()>;

// The registry the probe folders add themselves to: each folder defines
// `void registerProbes_<folder>(ProbeRegistry&)`, and plugins/CMakeLists.txt generates the calls from
// the folders it finds, so a new probe edits no shared file.
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
