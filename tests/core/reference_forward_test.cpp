// GPT-2, Mistral (sliding window, GQA) and Qwen2 (q/k/v biases, GQA) against reference forwards
// written from the published model definitions in tests/reference/make_reference_models.py.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <cstdlib>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/model_loader.h"

namespace headlab {

class ReferenceForwardTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceForwardTest, LogitsMatchTheIndependentForward) {
  const char* dir = std::getenv("HEADLAB_REFERENCE_DIR");
  ASSERT_NE(dir, nullptr) << "run through ctest (the MakeReferenceModels fixture writes the models)";
  const std::string folder = std::string(dir) + "/" + GetParam();
  c10::InferenceMode guard;
  LoadedModel m = loadModel(folder);
  EXPECT_EQ(m.model->config().arch, GetParam());
  auto ref = readJsonFile(folder + "/reference.json");
  auto tokens = ref["tokens"].get<std::vector<int64_t>>();
  auto shape = ref["shape"].get<std::vector<int64_t>>();
  auto values = ref["logits"].get<std::vector<float>>();
  at::Tensor expected = at::tensor(values).view(shape);
  at::Tensor got = m.model->forward(at::tensor(tokens, at::kLong).unsqueeze(0))[0];
  double worst = (got - expected).abs().max().item<double>();
  EXPECT_LT(worst, 1e-4) << "max |logit difference| " << worst;
}

INSTANTIATE_TEST_SUITE_P(Architectures, ReferenceForwardTest, ::testing::Values("gpt2", "mistral", "qwen2"));

}  // namespace headlab
