// The checks a careful researcher runs before trusting an interpretability tool on a model
// (`headlab-cli check`): observing every hook point changes nothing, KV-cache decoding equals the
// full forward, two runs are identical, and how far bfloat16 / float16 drift from float32.
#pragma once
#include <ATen/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace headlab {

class HookedTransformer;

struct FaithfulnessCheck {
  std::string name;
  bool passed = true;    // reports (the dtype drift) always pass; their numbers say how far
  std::string detail;    // one line: what was compared and what came out
  nlohmann::json values; // the numbers behind the line
};

// Runs every check on `ids` ([pos] token ids, at least 2). The model runs in float32 on its device;
// the dtype copies are made on the same device. Throws InputError for fewer than 2 ids.
std::vector<FaithfulnessCheck> runFaithfulnessChecks(HookedTransformer& model, const std::vector<int64_t>& ids);
nlohmann::json toJson(const std::vector<FaithfulnessCheck>& checks);

}  // namespace headlab
