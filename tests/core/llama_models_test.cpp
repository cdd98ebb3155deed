// stories260K, a real trained LLaMA-architecture model, in all three layouts: each must
// reproduce llama2.c's greedy text exactly.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/generate.h"
#include "headlab/core/model_loader.h"
#include "shared_path.h"
#include "tensor_assert.h"

namespace headlab {

using test::sharedPath;

namespace {
std::string greedy64(LoadedModel& m) {
  const std::string prompt = "Once upon a time";
  auto ids = m.tokenizer->encode(prompt, true);
  GenerateOptions g;
  // llama2.c -n 64 runs 64 forwards, positions 0..63, each predicting the next: 65 - P new tokens.
  g.maxNewTokens = 64 + 1 - static_cast<int64_t>(ids.size());
  auto out = generate(*m.model, ids, g, m.tokenizer->bos(), m.tokenizer->eos());
  return renderGeneration(*m.tokenizer, ids, out);
}
std::string referenceText() {
  return readJsonFile(sharedPath("testdata/stories260k-reference.json"))["stories260k_greedy_64"]["text"];
}
}  // namespace

class Stories260kTest : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(Stories260kTest, GreedyTextMatchesLlama2c) {
  LoadOptions o;
  o.tokenizerPath = GetParam().second.empty() ? "" : sharedPath(GetParam().second);
  LoadedModel m = loadModel(sharedPath(GetParam().first), o);
  ASSERT_TRUE(m.tokenizer);
  EXPECT_EQ(m.model->config().n_layers, 5);
  EXPECT_EQ(m.model->config().n_kv_heads, 4);
  EXPECT_EQ(greedy64(m), referenceText());
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, Stories260kTest,
                         ::testing::Values(std::make_pair("models/stories260k/stories260K.bin", "models/stories260k/tok512.bin"),
                                           std::make_pair("models/stories260k/stories260K_v1.bin", "models/stories260k/tok512.bin"),
                                           std::make_pair("models/stories260k/stories260K.gguf", ""),
                                           std::make_pair("models/stories260k-hf", "")));

TEST(Stories260kLogitsTest, AllLayoutsGiveTheSameLogits) {
  c10::InferenceMode guard;
  auto bin = loadModel(sharedPath("models/stories260k/stories260K.bin"));
  auto gguf = loadModel(sharedPath("models/stories260k/stories260K.gguf"));
  auto hf = loadModel(sharedPath("models/stories260k-hf"));
  at::Tensor ids = at::tensor(std::vector<int64_t>{1, 403, 407, 261, 378, 300, 43, 71, 90}, at::kLong).unsqueeze(0);
  at::Tensor a = bin.model->forward(ids);
  test::expectTensorClose(a, gguf.model->forward(ids), 1e-06);
  EXPECT_LT((a - hf.model->forward(ids)).abs().max().item<double>(), 1e-4);
}

TEST(Stories260kLogitsTest, KvCacheDecodingEqualsFullForward) {
  c10::InferenceMode guard;
  auto m = loadModel(sharedPath("models/stories260k/stories260K.bin"));
  at::Tensor ids = at::tensor(std::vector<int64_t>{1, 403, 407, 261, 378, 300, 43, 71}, at::kLong).unsqueeze(0);
  at::Tensor full = m.model->forward(ids);
  KvCache cache;
  m.model->forward(ids.slice(1, 0, 5), &cache);
  at::Tensor step = m.model->forward(ids.slice(1, 5, 8), &cache);
  // Float32 products of different shapes sum in different orders: ~1e-6 relative on logits of
  // magnitude ~10. A wrong cache (positions, masking, RoPE offset) is off by O(1).
  const double scale = full.abs().max().item<double>();
  EXPECT_LT((full.slice(1, 5, 8) - step).abs().max().item<double>(), 4e-6 * scale) << "logit scale " << scale;
}

}  // namespace headlab
