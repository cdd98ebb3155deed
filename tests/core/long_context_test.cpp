// Blockwise attention and the on-demand tiles (issue #20) against the explicit forward, on every
// architecture of the reference families (sliding windows shorter than the prompt, soft-capping
// that bites, GQA, local RoPE bases, Dynamic / LongRoPE past their original context) and on random
// models; block sizes small enough that every prompt crosses several query and key blocks.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <cstdlib>
#include <filesystem>

#include "headlab/core/attention_tiles.h"
#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/incremental_runner.h"
#include "headlab/core/model_loader.h"
#include "../../plugins/common/probe_util.h"
#include "random_model.h"
#include "tensor_assert.h"

namespace headlab {

namespace {
struct Explicit {
  at::Tensor logits;
  std::vector<at::Tensor> scores, patterns;  // per layer [head, q, k]
  AttentionRowStats stats;
};

Explicit runExplicit(HookedTransformer& model, const at::Tensor& tokens) {
  Explicit e;
  const int n = static_cast<int>(model.config().n_layers);
  e.scores.resize(n), e.patterns.resize(n);
  std::vector<HookHandle> hs;
  for (int l = 0; l < n; ++l) {
    hs.push_back(model.hooks().add(model.hooks().idOf(l, LayerHook::AttnScores), [&e, l](at::Tensor& t, const HookContext&) { e.scores[l] = t[0].to(at::kFloat).clone(); }));
    hs.push_back(model.hooks().add(model.hooks().idOf(l, LayerHook::Pattern), [&e, l](at::Tensor& t, const HookContext&) { e.patterns[l] = t[0].clone(); }));
  }
  model.setAttentionImpl(AttentionImpl::Explicit);
  model.recordRowStats(&e.stats);
  e.logits = model.forward(tokens);
  model.recordRowStats(nullptr);
  EXPECT_EQ(model.lastAttentionImpl(), "explicit");
  return e;
}

// Blockwise forward == explicit forward (logits, row statistics), and every tile, statistic and
// overview cell of the on-demand path == the explicit matrices.
void expectBlockwiseMatchesExplicit(HookedTransformer& model, const at::Tensor& tokens, const std::string& what) {
  c10::InferenceMode guard;
  const Explicit e = runExplicit(model, tokens);
  const int n = static_cast<int>(model.config().n_layers);
  const int64_t T = tokens.size(1), H = model.config().n_heads;
  const double scale = std::max(1.0, e.logits.abs().max().item<double>());

  BlockwiseOptions small;
  small.queryBlock = 5, small.keyBlock = 7;  // several blocks per row and per column, uneven ends
  model.setAttentionImpl(AttentionImpl::Blockwise, small);
  AttentionRowStats stats;
  model.recordRowStats(&stats);
  const at::Tensor logits = model.forward(tokens);
  model.recordRowStats(nullptr);
  EXPECT_EQ(model.lastAttentionImpl(), "blockwise") << what;
  test::expectTensorClose(logits, e.logits, 1e-5 * scale, what + " blockwise logits");
  // Relative 1e-5: a log-sum-exp of ~20 carries float32 rounding of ~2e-6 per operation.
  const auto lseTol = [](const at::Tensor& lse) { return 1e-5 * std::max(1.0, lse.abs().max().item<double>()); };
  for (int l = 0; l < n; ++l)
    test::expectTensorClose(stats.logSumExp[l], e.stats.logSumExp[l], lseTol(e.stats.logSumExp[l]), what + " row log-sum-exp, layer " + std::to_string(l));
  model.setAttentionImpl(AttentionImpl::Auto);

  for (bool fromForward : {true, false}) {
    AttentionTilesOptions o;
    o.blockwise = small, o.statsFromForward = fromForward, o.budgetBytes = 2048;  // the streamed statistics cross blocks too
    const int last = n - 1;
    o.layers = {0, last};
    AttentionTiles tiles(model, tokens, o);
    EXPECT_EQ(tiles.hasRowStats(last), fromForward) << what;
    for (int l : {0, last}) {
      const std::string where = what + " layer " + std::to_string(l) + (fromForward ? "" : " (statistics on demand)");
      // A tile off the diagonal, one across it, and the whole matrix; a subset of heads in another order.
      const int64_t a = T / 3, b = (2 * T) / 3;
      const std::vector<int64_t> heads{H - 1, 0};
      const at::Tensor idx = at::tensor(heads, at::kLong);
      test::expectTensorClose(tiles.pattern(l, heads, b, T, 0, a), e.patterns[l].index_select(0, idx).slice(1, b, T).slice(2, 0, a), 1e-5, where + " off-diagonal tile");
      test::expectTensorClose(tiles.pattern(l, {}, a, b, a, T), e.patterns[l].slice(1, a, b).slice(2, a, T), 1e-5, where + " tile across the diagonal");
      test::expectTensorClose(tiles.pattern(l, {}, 0, T, 0, T), e.patterns[l], 1e-5, where + " whole pattern");
      const at::Tensor s = tiles.scores(l, {}, 0, T, 0, T), finite = at::isfinite(e.scores[l]);
      EXPECT_TRUE(at::equal(at::isfinite(s), finite)) << where << ": the masked cells differ";
      test::expectTensorClose(s.masked_fill(~finite, 0), e.scores[l].masked_fill(~finite, 0), 1e-5 * std::max(1.0, e.scores[l].masked_fill(~finite, 0).abs().max().item<double>()), where + " scores");
      test::expectTensorClose(tiles.rowLogSumExp(l, {}, a, b), e.stats.logSumExp[l][0].slice(1, a, b), lseTol(e.stats.logSumExp[l]), where + " row statistics");
      // Overview: 4 cells per axis (cells of ceil(T / 4) positions, a shorter last one).
      const int64_t head = H / 2;
      const AttentionOverview ov = tiles.overview(l, head, 4);
      const int64_t cell = ov.rowsPerCell;
      for (int64_t i = 0; i < ov.max.size(0); ++i)
        for (int64_t j = 0; j < ov.max.size(1); ++j) {
          const at::Tensor block = e.patterns[l][head].slice(0, i * cell, std::min(T, (i + 1) * cell)).slice(1, j * cell, std::min(T, (j + 1) * cell));
          EXPECT_NEAR(ov.max[i][j].item<double>(), block.max().item<double>(), 1e-5) << where << " overview max cell " << i << "," << j;
          EXPECT_NEAR(ov.mean[i][j].item<double>(), block.mean().item<double>(), 1e-6) << where << " overview mean cell " << i << "," << j;
        }
    }
  }
}
}  // namespace

class LongContextReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LongContextReferenceTest, BlockwiseForwardTilesAndOverviewEqualTheExplicitAttention) {
  const char* dir = std::getenv("HEADLAB_REFERENCE_DIR");
  ASSERT_NE(dir, nullptr) << "run through ctest (the MakeReferenceModels fixture writes the models)";
  const std::string folder = std::string(dir) + "/" + GetParam();
  LoadedModel m = loadModel(folder);
  auto ref = readJsonFile(folder + "/reference.json");
  const at::Tensor tokens = at::tensor(ref["tokens"].get<std::vector<int64_t>>(), at::kLong).unsqueeze(0);
  expectBlockwiseMatchesExplicit(*m.model, tokens, GetParam());
}

// The families of tests/reference/families.py and the RoPE scaling types (see reference_forward_test.cpp).
INSTANTIATE_TEST_SUITE_P(Architectures, LongContextReferenceTest,
                         ::testing::Values("gpt2", "mistral", "qwen2", "rope_yarn", "rope_dynamic", "rope_longrope", "qwen3", "olmo2", "gemma",
                                           "gemma2", "gemma3_text", "phi3", "gpt_neox"));

TEST(LongContextTest, BlockwiseMatchesExplicitOnRandomModelsWithGqaAndSlidingWindows) {
  for (const std::string arch : {"gpt2", "llama", "mistral"}) {
    HookedTransformer model = test::randomModel(arch, 3);
    expectBlockwiseMatchesExplicit(model, test::randomTokens(1, 40, model.config().d_vocab, 4), arch);
  }
}

TEST(LongContextTest, ProbeColumnSumsFromTilesEqualTheExplicitPatterns) {
  // What sinks and hidden-sinks read (the attention each key receives) past kExplicitPatternBytes.
  for (const std::string arch : {"gpt2", "mistral"}) {
    HookedTransformer model = test::randomModel(arch, 7);
    const at::Tensor t = test::randomTokens(1, 50, model.config().d_vocab, 8);
    const std::vector<int64_t> ids(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    const at::Tensor explicitSums = plugins::keyColumnSums(model, ids), blockwiseSums = plugins::keyColumnSums(model, ids, true);
    test::expectTensorClose(blockwiseSums, explicitSums, 1e-5, arch + " column sums");
    // Every query's row sums to 1: the column sums add up to T per head.
    test::expectTensorClose(blockwiseSums.sum(-1), at::full({model.config().n_layers, model.config().n_heads}, 50.0), 1e-4, arch + " total");
  }
}

TEST(LongContextTest, AutoRunsBlockwiseOnlyWhereTheScoresWouldBeLargeAndNeverUnderAPatternHook) {
  c10::InferenceMode guard;
  ModelConfig c = test::smallConfig("llama");
  c.n_ctx = 8192;
  HookedTransformer model(c, test::randomWeights(c, 5));
  model.forward(test::randomTokens(1, 32, c.d_vocab));
  EXPECT_EQ(model.lastAttentionImpl(), "explicit");
  // 4 heads x 4096^2 x 4 bytes = 256 MB of scores: over the 128 MB line.
  const at::Tensor longPrompt = test::randomTokens(1, 4096, c.d_vocab);
  model.forward(longPrompt);
  EXPECT_EQ(model.lastAttentionImpl(), "blockwise");
  {
    auto h = model.hooks().add(model.hooks().idOf(1, LayerHook::Pattern), [](at::Tensor&, const HookContext&) {});
    model.forward(longPrompt.slice(1, 0, 3000));
    EXPECT_EQ(model.lastAttentionImpl(), "explicit+blockwise");  // layer 1 explicit for its hook, the others blockwise
  }
}

TEST(LongContextTest, TheWindowsRunnerRefusesAPromptOverItsBudgetBeforeAnyWorkAndKeepsItsPrompt) {
  HookedTransformer model = test::randomModel("llama", 2);
  const auto& c = model.config();
  IncrementalRunner runner(model);
  EXPECT_GT(runner.memoryBudget(), 0u);  // 3/4 of MemAvailable by default
  // 3 layers x 4 heads: 2 x 3 x 4 x 40^2 x 4 B held + 3 x 4 x 40^2 x 4 B while a layer runs + inputs.
  EXPECT_EQ(IncrementalRunner::estimateBytes(c, 40), static_cast<uint64_t>(2 * 3 * 4 * 1600 * 4 + 3 * 40 * 32 * 4 + 3 * 4 * 1600 * 4));
  const std::vector<int64_t> shortIds{1, 2, 3, 4, 5}, longIds(40, 7);
  runner.setMemoryBudget(IncrementalRunner::estimateBytes(c, 39));
  EXPECT_EQ(IncrementalRunner::maxPositions(c, runner.memoryBudget()), 39);
  runner.setPrompt(shortIds);
  const at::Tensor before = runner.logits().clone();
  try {
    runner.setPrompt(longIds);
    FAIL() << "a prompt over the budget ran";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("a 40-token prompt needs about"), std::string::npos) << m;
    EXPECT_NE(m.find("up to 39 tokens in the window"), std::string::npos) << m;
    EXPECT_NE(m.find("--heads/--rows/--cols"), std::string::npos) << m;
  }
  EXPECT_EQ(runner.tokens(), shortIds);  // nothing changed
  EXPECT_TRUE(at::equal(runner.logits(), before));
  runner.setMemoryBudget(0);
  EXPECT_NO_THROW(runner.setPrompt(longIds));
}

TEST(LongContextTest, TilesRefuseRangesOutsideThePromptAndLayersNotKept) {
  c10::InferenceMode guard;
  HookedTransformer model = test::randomModel("llama", 1);
  AttentionTilesOptions o;
  o.layers = {1};
  AttentionTiles tiles(model, test::randomTokens(1, 20, model.config().d_vocab), o);
  EXPECT_THROW(tiles.pattern(1, {}, 0, 21, 0, 5), InputError);
  EXPECT_THROW(tiles.pattern(1, {}, 5, 5, 0, 5), InputError);
  EXPECT_THROW(tiles.pattern(1, {4}, 0, 2, 0, 2), InputError);  // 4 heads: 0..3
  EXPECT_THROW(tiles.pattern(0, {}, 0, 2, 0, 2), InputError);   // layer 0 not kept
  EXPECT_THROW(tiles.pattern(3, {}, 0, 2, 0, 2), InputError);
  // A row's pattern sums to one over its keys, however the columns are split.
  const at::Tensor left = tiles.pattern(1, {2}, 10, 20, 0, 7), right = tiles.pattern(1, {2}, 10, 20, 7, 20);
  test::expectTensorClose(left.sum(-1) + right.sum(-1), at::ones({1, 10}), 1e-6, "row sums");
}

}  // namespace headlab
