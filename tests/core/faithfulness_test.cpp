// headlab-cli check's faithfulness checks: they pass on a sound model and name what broke when a
// forward is not deterministic.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "headlab/core/faithfulness.h"
#include "random_model.h"

namespace headlab {

namespace {
const FaithfulnessCheck& find(const std::vector<FaithfulnessCheck>& checks, const std::string& name) {
  for (const auto& c : checks)
    if (c.name == name) return c;
  throw std::runtime_error("no check " + name);
}
const std::vector<int64_t> kIds{1, 5, 9, 2, 7, 3, 8, 4, 6, 11};
}  // namespace

TEST(FaithfulnessTest, ASoundModelPassesEveryCheck) {
  for (const char* arch : {"gpt2", "llama"}) {
    HookedTransformer m = test::randomModel(arch);
    const auto checks = runFaithfulnessChecks(m, kIds);
    for (const auto& c : checks) EXPECT_TRUE(c.passed) << arch << " " << c.name << ": " << c.detail;
    EXPECT_TRUE(toJson(checks)["passed"].get<bool>());
    EXPECT_GT(find(checks, "hooks_observed").values["hook_points"].get<int>(), 10);
    EXPECT_GE(find(checks, "drift_BFloat16").values["top1_agreement"].get<double>(), 0.0);
  }
}

TEST(FaithfulnessTest, PlantedNonDeterminismFailsWithWhereItDiffers) {
  HookedTransformer m = test::randomModel("llama");
  // A hook left on the model that adds fresh noise on every call, as a racy kernel would.
  auto noisy = m.hooks().add("blocks.1.hook_resid_post", [](at::Tensor& x, const HookContext&) { x = x + 1e-3 * at::randn(x.sizes()); });
  const auto checks = runFaithfulnessChecks(m, kIds);
  const auto& d = find(checks, "determinism");
  EXPECT_FALSE(d.passed);
  EXPECT_NE(d.detail.find("max |Δlogit|"), std::string::npos) << d.detail;
  EXPECT_NE(d.detail.find("at position"), std::string::npos) << d.detail;
  EXPECT_FALSE(toJson(checks)["passed"].get<bool>());
}

TEST(FaithfulnessTest, APromptOfOneTokenOrAReducedPrecisionModelIsRefused) {
  HookedTransformer m = test::randomModel("llama");
  EXPECT_THROW(runFaithfulnessChecks(m, {1}), InputError);
  m.to(at::kCPU, at::kBFloat16);
  EXPECT_THROW(runFaithfulnessChecks(m, kIds), InputError) << "the drift checks need the float32 model as reference";
}

}  // namespace headlab
