// Invariants every architecture must keep, on seeded random weights.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "headlab/core/generate.h"
#include "headlab/core/incremental_runner.h"
#include "headlab/core/logit_lens.h"
#include "random_model.h"
#include "tensor_assert.h"

namespace headlab {

class TransformerInvariantsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { guard = std::make_unique<c10::InferenceMode>(); }
  std::unique_ptr<c10::InferenceMode> guard;
};

TEST_P(TransformerInvariantsTest, PatternRowsSumToOneAndAreCausal) {
  auto model = test::randomModel(GetParam());
  std::vector<at::Tensor> patterns;
  std::vector<HookHandle> handles;
  for (const auto& name : model.hooks().match("blocks.*.attn.hook_pattern"))
    handles.push_back(model.hooks().add(name, [&](at::Tensor& p, const HookContext&) { patterns.push_back(p.clone()); }));
  model.forward(test::randomTokens(2, 12, 50));
  ASSERT_EQ(patterns.size(), 3u);
  for (const auto& p : patterns) {
    ASSERT_EQ(p.sizes().vec(), (std::vector<int64_t>{2, 4, 12, 12}));
    test::expectTensorClose(p.sum(-1), at::ones({2, 4, 12}), 1e-4);
    EXPECT_EQ(p.triu(1).abs().max().item<float>(), 0.0f) << "future keys must get zero attention";
    if (GetParam() == "mistral") {
      // window 5: query 11 cannot see key 6 or earlier
      EXPECT_EQ(p.select(2, 11).slice(-1, 0, 7).abs().max().item<float>(), 0.0f);
      EXPECT_GT(p.select(2, 11).slice(-1, 7, 12).sum().item<float>(), 0.99f);
    }
  }
}

TEST_P(TransformerInvariantsTest, IdleHooksEverywhereLeaveLogitsBitIdentical) {
  auto model = test::randomModel(GetParam());
  at::Tensor tokens = test::randomTokens(2, 10, 50);
  at::Tensor plain = model.forward(tokens);
  std::vector<HookHandle> handles;
  double sink = 0;
  for (const auto& name : model.hooks().names())
    handles.push_back(model.hooks().add(name, [&](at::Tensor& t, const HookContext&) { sink += t.numel(); }));
  at::Tensor hooked = model.forward(tokens);
  EXPECT_GT(sink, 0);
  EXPECT_TRUE(at::equal(plain, hooked));
}

TEST_P(TransformerInvariantsTest, ResultHookSumsToAttentionOutput) {
  auto model = test::randomModel(GetParam());
  at::Tensor result, attnOut;
  auto h1 = model.hooks().add("blocks.1.attn.hook_result", [&](at::Tensor& t, const HookContext&) { result = t.clone(); });
  auto h2 = model.hooks().add("blocks.1.hook_attn_out", [&](at::Tensor& t, const HookContext&) { attnOut = t.clone(); });
  model.forward(test::randomTokens(1, 7, 50));
  ASSERT_EQ(result.sizes().vec(), (std::vector<int64_t>{1, 7, 4, 32}));
  at::Tensor sum = result.sum(2);
  if (model.weights().layers[1].bo.defined()) sum = sum + model.weights().layers[1].bo;
  test::expectTensorClose(sum, attnOut, 1e-3);
}

TEST_P(TransformerInvariantsTest, SuffixRecomputeEqualsFullForward) {
  auto model = test::randomModel(GetParam());
  at::Tensor tokens = test::randomTokens(1, 9, 50);
  at::Tensor resid2;
  at::Tensor full;
  {
    auto h = model.hooks().add("blocks.2.hook_resid_pre", [&](at::Tensor& t, const HookContext&) { resid2 = t.clone(); });
    full = model.forward(tokens);
  }
  test::expectTensorClose(model.forwardFrom(2, resid2), full, 1e-4);
}

TEST_P(TransformerInvariantsTest, RejectsBadTokens) {
  auto model = test::randomModel(GetParam());
  EXPECT_THROW(model.forward(at::zeros({1, 0}, at::kLong)), InputError);
  EXPECT_THROW(model.forward(at::full({1, 3}, 50, at::kLong)), InputError);
  EXPECT_THROW(model.forward(at::zeros({1, 65}, at::kLong)), InputError);
}

// The logit lens's last layer is the model's own prediction; with the final norm's scale frozen, the
// heads, MLPs, embeddings and biases add up to the logit (and to a logit difference), for LayerNorm
// (GPT-2: biases, learned positions) and RMSNorm families alike.
TEST_P(TransformerInvariantsTest, LensEndsAtTheLogitsAndAttributionSumsToTheLogit) {
  auto model = test::randomModel(GetParam());
  const std::vector<int64_t> ids{1, 7, 3, 9, 12, 4, 7, 3};
  at::Tensor probs = at::softmax(model.forward(at::tensor(ids, at::kLong).unsqueeze(0))[0], -1);
  LensOptions o;
  o.topK = 3, o.follow = 9;
  const LogitLens lens = logitLens(model, ids, o);
  const int64_t L = model.config().n_layers, T = static_cast<int64_t>(ids.size());
  ASSERT_EQ(lens.topIds.sizes().vec(), (std::vector<int64_t>{L, T, 3}));
  auto [p, i] = probs.topk(3, -1);
  EXPECT_TRUE(at::equal(lens.topIds[L - 1], i)) << "the last layer's lens is the model's prediction";
  test::expectTensorClose(lens.topProbs[L - 1], p, 1e-5);
  test::expectTensorClose(lens.followProb[L - 1], probs.select(-1, 9), 1e-5);
  EXPECT_EQ(lens.followRank[L - 1][3].item<int64_t>(), (probs[3] > probs[3][9]).sum().item<int64_t>());
  for (int64_t wrong : {int64_t{-1}, int64_t{5}}) {
    const LogitAttribution a = directLogitAttribution(model, ids, -1, 9, wrong);
    const double total = a.embed + a.heads.sum().item<double>() + a.mlps.sum().item<double>() + a.biases;
    EXPECT_NEAR(total, a.logit, 1e-4 * std::max(1.0, std::abs(a.logit))) << "wrong " << wrong;
    EXPECT_GT(a.heads.abs().sum().item<double>(), 0.0);
  }
  EXPECT_THROW(directLogitAttribution(model, ids, T, 9), InputError);
  EXPECT_THROW(logitLens(model, ids, LensOptions{0}), InputError);
}

INSTANTIATE_TEST_SUITE_P(Architectures, TransformerInvariantsTest,
                         ::testing::Values("gpt2", "llama", "llama2c", "mistral", "qwen2"));

TEST(GroupedQueryAttentionTest, QueryHeadsReadTheirKvHead) {
  c10::InferenceMode guard;
  auto model = test::randomModel("llama");  // 4 query heads, 2 kv heads
  at::Tensor q, k, pattern;
  auto h1 = model.hooks().add("blocks.0.attn.hook_rot_q", [&](at::Tensor& t, const HookContext&) { q = t.clone(); });
  auto h2 = model.hooks().add("blocks.0.attn.hook_rot_k", [&](at::Tensor& t, const HookContext&) { k = t.clone(); });
  auto h3 = model.hooks().add("blocks.0.attn.hook_pattern", [&](at::Tensor& t, const HookContext&) { pattern = t.clone(); });
  model.forward(test::randomTokens(1, 6, 50));
  ASSERT_EQ(k.size(2), 2);
  for (int64_t h = 0; h < 4; ++h) {
    // llama2.c's "h / kv_mul": heads 0,1 read kv head 0; heads 2,3 read kv head 1.
    at::Tensor scores = at::matmul(q.select(2, h)[0], k.select(2, h / 2)[0].t()) / std::sqrt(8.0);
    scores = scores.masked_fill(at::ones({6, 6}, at::kBool).triu(1), -INFINITY);
    test::expectTensorClose(at::softmax(scores, -1), pattern[0][h], 1e-4, "head " + std::to_string(h));
  }
}

}  // namespace headlab

namespace headlab {

TEST(NonFiniteTest, ReportsTheHookWhereNaNFirstAppears) {
  c10::InferenceMode guard;
  ModelConfig c = test::smallConfig("llama");
  ModelWeights w = test::randomWeights(c, 3);
  w.layers[1].wv[5][7] = std::numeric_limits<float>::quiet_NaN();  // a corrupt value weight in layer 1
  HookedTransformer model(c, w);
  at::Tensor tokens = test::randomTokens(1, 6, 50);
  EXPECT_EQ(model.firstNonFiniteHook(tokens), "blocks.1.attn.hook_v");
  try {
    generate(model, {1, 2, 3}, GenerateOptions{});
    FAIL() << "garbage was generated silently";
  } catch (const NumericError& e) {
    EXPECT_NE(std::string(e.what()).find("first appear at blocks.1.attn.hook_v"), std::string::npos) << e.what();
  }
  IncrementalRunner runner(model);
  EXPECT_THROW(runner.setPrompt({1, 2, 3}), NumericError);
  auto clean = test::randomModel("llama");
  EXPECT_EQ(clean.firstNonFiniteHook(tokens), "") << "masked scores (-inf) are not a finding";
}

}  // namespace headlab

namespace headlab {

// A long declared context (Llama-3's 131072, or a fuzzed 6e15) costs nothing up front: the RoPE
// tables grow with the positions actually run, and growing them never changes a row.
TEST(RopeTablesTest, LongContextIsFreeAndGrownRowsAreRealRotations) {
  c10::InferenceMode guard;
  ModelConfig shortCtx = test::smallConfig("llama");
  ModelWeights w = test::randomWeights(shortCtx, 5);
  ModelConfig longCtx = shortCtx;
  longCtx.n_ctx = int64_t{1} << 24;
  HookedTransformer small(shortCtx, w), large(longCtx, w);
  at::Tensor tokens = test::randomTokens(1, 9, 50);
  EXPECT_TRUE(at::equal(small.forward(tokens), large.forward(tokens)));

  // Without a causal mask, attention depends only on relative positions, so a block run at
  // positions 20000.. (past the initial table) equals the same block at 0.. up to float32 angles.
  longCtx.causal = false;
  HookedTransformer bidirectional(longCtx, w);
  at::Tensor x = at::randn({1, 6, longCtx.d_model});
  at::Tensor atStart = bidirectional.block(0, x, nullptr, 0);
  at::Tensor farAway = bidirectional.block(0, x, nullptr, 20000);
  test::expectTensorClose(atStart, farAway, 2e-2);
  // Positions matter in this block: reversing the rows is not equivariant under RoPE.
  EXPECT_FALSE(at::allclose(atStart, bidirectional.block(0, x.flip(1), nullptr, 0).flip(1), 1e-2, 1e-2));

  longCtx.n_ctx = (int64_t{1} << 24) + 1;
  EXPECT_THROW(HookedTransformer(longCtx, w), Error);
}

}  // namespace headlab
