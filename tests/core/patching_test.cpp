#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <functional>

#include "headlab/core/errors.h"
#include "headlab/core/patching.h"
#include "planted_circuit.h"
#include "random_model.h"

namespace headlab {

namespace {
PatchingRequest plantedRequest(SweepKind sweep) {
  PatchingRequest r;
  r.clean = {0, 3, 5, 6, 7, 5};
  r.corrupted = {0, 4, 5, 6, 7, 5};
  r.answer = 3, r.wrong = 4;
  r.sweep = sweep;
  return r;
}

const std::pair<int64_t, int64_t> kPlanted{test::kPlantedLayer, test::kPlantedHead};

std::pair<int64_t, int64_t> argmaxHead(const at::Tensor& grid) {
  int64_t flat = grid.argmax().item<int64_t>();
  return {flat / grid.size(1), flat % grid.size(1)};
}
}  // namespace

class PatchingSweepTest : public ::testing::TestWithParam<std::tuple<SweepKind, PatchDirection, std::string>> {};

TEST_P(PatchingSweepTest, BatchedEngineEqualsOneForwardPerPatch) {
  auto [sweep, direction, arch] = GetParam();
  auto model = test::randomModel(arch, 5);
  PatchingRequest r;
  r.clean = {1, 7, 12, 30, 8, 22, 41};
  r.corrupted = {1, 7, 19, 30, 8, 3, 41};
  r.answer = 11, r.wrong = 17;
  r.sweep = sweep, r.direction = direction;
  PatchingResult pipelined = patchBatched(model, r);  // every layer once, patches joining the batch
  r.pipeline = false;
  r.maxBatch = 5;  // the per-layer engine, forced into several chunks per layer
  PatchingResult fast = patchBatched(model, r);
  PatchingResult slow = patchPerForward(model, r);
  ASSERT_EQ(fast.grid.sizes(), slow.grid.sizes());
  EXPECT_LT((fast.grid - slow.grid).abs().max().item<double>(), 1e-5);
  EXPECT_LT((pipelined.grid - slow.grid).abs().max().item<double>(), 1e-5);
  EXPECT_LT(fast.forwards, slow.forwards);
  EXPECT_EQ(pipelined.forwards, 2 + 3) << "clean, corrupted, then each of the 3 layers once";
  EXPECT_TRUE(at::isfinite(fast.grid).all().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(
    AllSweeps, PatchingSweepTest,
    ::testing::Combine(::testing::ValuesIn(sweepKinds()),
                       ::testing::Values(PatchDirection::Denoising, PatchDirection::Noising),
                       ::testing::Values(std::string("gpt2"), std::string("llama"))));

// Every row of the layout table: its patches cover its grid, each cell exactly once, and address
// heads and positions that exist.
TEST(SweepLayoutTest, EveryKindCoversItsGridOnce) {
  const SweepShape s{3, 4, 2, 5};
  for (SweepKind k : sweepKinds()) {
    const auto axes = k.layout().axes(s);
    int64_t cells = 1;
    for (const SweepAxis& a : axes) cells *= a.size;
    std::vector<int> seen(static_cast<size_t>(cells), 0);
    for (int64_t l = 0; l < s.layers; ++l)
      for (const LayerPatch& p : k.layout().patchesOfLayer(l, s)) {
        ASSERT_GE(p.cell, 0) << k;
        ASSERT_LT(p.cell, cells) << k;
        ++seen[static_cast<size_t>(p.cell)];
        const bool kv = p.hook == LayerHook::K || p.hook == LayerHook::V;
        EXPECT_LT(p.head, kv ? s.kvHeads : s.heads) << k;
        EXPECT_LT(p.pos, s.positions) << k;
      }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), cells) << k << ": every cell patched exactly once";
    EXPECT_EQ(sweepKindFromString(toString(k)), k);
  }
  EXPECT_THROW(sweepKindFromString("bogus"), InputError);
}

// Clean and corrupted differ only at position 2, so at layer 0 every activation of an earlier
// position is the same in both runs: patching it must change nothing, whichever hook, head and
// axis a layout addresses (a mask on the wrong axis fails this).
TEST(SweepLayoutTest, EarlierPositionsAreNoOpsAtLayerZeroForEveryKind) {
  auto model = test::randomModel("llama", 4);
  PatchingRequest r;
  r.clean = {1, 2, 3, 4, 5};
  r.corrupted = {1, 2, 8, 4, 5};
  r.answer = 6, r.wrong = 9;
  for (SweepKind k : sweepKinds()) {
    r.sweep = k;
    for (bool attribution : {false, true}) {
      PatchingResult res = attribution ? patchAttribution(model, r) : patchBatched(model, r);
      ASSERT_EQ(res.axes.size(), res.gridAxes.size());
      const auto pos = std::find(res.axes.begin(), res.axes.end(), "pos") - res.axes.begin();
      const auto layer = std::find(res.axes.begin(), res.axes.end(), "layer") - res.axes.begin();
      if (pos == static_cast<long>(res.axes.size())) continue;  // no position axis
      // Batched float32 runs differ from the unbatched target run by rounding (1e-6 here).
      at::Tensor early = res.grid.select(layer, 0);
      early = early.narrow(pos > layer ? pos - 1 : pos, 0, 2);
      EXPECT_LT(early.abs().max().item<double>(), 1e-4) << k << (attribution ? " attribution" : " exact");
      at::Tensor atDiff = res.grid.select(layer, 0).select(pos > layer ? pos - 1 : pos, 2);
      EXPECT_GT(atDiff.abs().max().item<double>(), 1e-3) << k << ": the differing position matters somewhere";
    }
  }
}

TEST(PatchingTest, CleanIntoCleanChangesNothing) {
  auto model = test::randomModel("llama", 2);
  PatchingRequest r;
  r.clean = r.corrupted = {1, 2, 3, 4, 5};
  r.answer = 6, r.wrong = 9;
  r.sweep = SweepKind::HeadPos;
  PatchingResult res = patchBatched(model, r);
  EXPECT_EQ(res.cleanMetric, res.corruptedMetric);
  EXPECT_EQ(res.grid.abs().max().item<double>(), 0.0) << "span 0: every patch is a no-op";
  r.corrupted = {1, 2, 8, 4, 5};
  r.sweep = SweepKind::ResidPos;
  res = patchBatched(model, r);
  // Patching the whole clean residual at layer 0 of the position that differs recovers the clean run.
  EXPECT_NEAR(res.grid[0][2].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(res.grid[0][3].item<double>(), 0.0, 1e-6) << "positions that agree change nothing at layer 0";
}

TEST(PatchingTest, PlantedHeadComesFirstInExactAndAttributionPatching) {
  auto model = test::plantedCircuitModel();
  PatchingResult exact = patchBatched(model, plantedRequest(SweepKind::Heads));
  EXPECT_GT(exact.cleanMetric, 1.0);
  EXPECT_LT(exact.corruptedMetric, -1.0);
  EXPECT_EQ(argmaxHead(exact.grid), kPlanted);
  EXPECT_GT(exact.grid[test::kPlantedLayer][test::kPlantedHead].item<double>(), 0.9);
  PatchingResult attribution = patchAttribution(model, plantedRequest(SweepKind::Heads));
  EXPECT_EQ(argmaxHead(attribution.grid), kPlanted);
  EXPECT_EQ(attribution.method, "attribution");
}

TEST(PatchingTest, AttributionCorrelatesWithExactPatching) {
  auto model = test::plantedCircuitModel();
  for (SweepKind k : {SweepKind::Heads, SweepKind::ResidPos, SweepKind::LayerPos}) {
    at::Tensor a = patchBatched(model, plantedRequest(k)).grid.flatten();
    at::Tensor b = patchAttribution(model, plantedRequest(k)).grid.flatten();
    double corr = at::corrcoef(at::stack({a, b})).select(0, 1)[0].item<double>();
    EXPECT_GT(corr, 0.8) << toString(k);
  }
}

// A gap that is small against the spread of the logits amplifies noise in the normalised grid:
// the result says so (and its JSON), and says nothing when the gap is large.
TEST(PatchingTest, WarnsWhenTheCleanCorruptedGapIsSmallAgainstTheLogitScale) {
  auto model = test::plantedCircuitModel();
  PatchingResult large = patchBatched(model, plantedRequest(SweepKind::Heads));
  ASSERT_GT(large.logitScale, 0.0);
  ASSERT_GT(std::abs(large.cleanMetric - large.corruptedMetric), kSmallGapFraction * large.logitScale);
  EXPECT_TRUE(large.warnings.empty());
  EXPECT_FALSE(large.toJson().contains("warnings"));

  // The same prompt twice: a gap of 0, every normalised value 0 / 0 (reported as 0).
  PatchingRequest r = plantedRequest(SweepKind::Heads);
  r.corrupted = r.clean;
  for (bool attribution : {false, true}) {
    PatchingResult small = attribution ? patchAttribution(model, r) : patchBatched(model, r);
    const double gap = std::abs(small.cleanMetric - small.corruptedMetric);
    ASSERT_LT(gap, kSmallGapFraction * small.logitScale) << "gap " << gap << ", logit scale " << small.logitScale;
    ASSERT_EQ(small.warnings.size(), 1u);
    EXPECT_NE(small.warnings[0].find("may mislead"), std::string::npos) << small.warnings[0];
    EXPECT_EQ(small.toJson()["warnings"].size(), 1u);
  }
}

// Every engine reports progress with a stage, and stops with CancelledError when told to.
TEST(PatchingTest, EveryEngineReportsProgressAndCancels) {
  auto model = test::plantedCircuitModel();
  const PatchingRequest r = plantedRequest(SweepKind::Heads);
  std::vector<std::pair<double, std::string>> seen;
  auto record = [&seen](double f, const std::string& stage) { return seen.emplace_back(f, stage), true; };
  auto stop = [](double, const std::string&) { return false; };
  using Run = std::function<PatchingResult(const Progress&)>;
  const std::vector<std::pair<std::string, Run>> engines = {
      {"batched", [&](const Progress& p) { return patchBatched(model, r, p); }},
      {"per forward", [&](const Progress& p) { return patchPerForward(model, r, p); }},
      {"attribution", [&](const Progress& p) { return patchAttribution(model, r, p); }},
      {"path", [&](const Progress& p) { return patchPath(model, r, 1, 0, PathInput::V, p); }}};
  for (const auto& [name, run] : engines) {
    seen.clear();
    run(record);
    ASSERT_FALSE(seen.empty()) << name;
    EXPECT_FALSE(seen.front().second.empty()) << name << ": a stage text";
    for (size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i].first, seen[i - 1].first) << name;
    EXPECT_LE(seen.back().first, 1.0) << name;
    EXPECT_THROW(run(stop), CancelledError) << name;
  }
}

TEST(PatchingTest, RejectsMismatchedLengthsAndBadTokens) {
  auto model = test::randomModel("gpt2");
  PatchingRequest r = plantedRequest(SweepKind::Heads);
  r.corrupted.push_back(1);
  try {
    patchBatched(model, r);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "clean prompt has 6 tokens but corrupted has 7; patching needs equal lengths");
  }
  r = plantedRequest(SweepKind::Heads);
  r.wrong = r.answer;
  EXPECT_THROW(patchBatched(model, r), InputError);
}

TEST(PatchingTest, ResultJsonCarriesAxesAndMeaning) {
  auto model = test::plantedCircuitModel();
  auto j = patchBatched(model, plantedRequest(SweepKind::HeadPos)).toJson({"a", "b", "c", "d", "e", "f"});
  EXPECT_EQ(j["axes"], (std::vector<std::string>{"layer", "head", "pos"}));
  EXPECT_EQ(j["shape"], (std::vector<int64_t>{2, 4, 6}));
  EXPECT_EQ(j["values"].size(), 48u);
  EXPECT_EQ(j["normalisation"], "0 = corrupted run, 1 = clean run");
}

}  // namespace headlab

namespace headlab {

TEST(PathPatchingTest, TheMoversEffectFlowsThroughTheReadersValueOnly) {
  auto model = test::plantedTwoStepModel();
  PatchingRequest r = plantedRequest(SweepKind::Heads);
  PatchingResult heads = patchBatched(model, r);
  ASSERT_GT(heads.cleanMetric, 0.5);
  ASSERT_LT(heads.corruptedMetric, -0.5);
  EXPECT_GT(heads.grid[test::kMoverLayer][test::kMoverHead].item<double>(), 0.8) << "the mover matters";
  EXPECT_GT(heads.grid[test::kReaderLayer][test::kReaderHead].item<double>(), 0.8) << "and so does the reader";

  PatchingResult v = patchPath(model, r, test::kReaderLayer, test::kReaderHead, PathInput::V);
  EXPECT_EQ(v.method, "path-v");
  EXPECT_GT(v.grid[test::kMoverLayer][test::kMoverHead].item<double>(), 0.8) << "mover -> reader.v carries the answer";
  for (int h = 0; h < 4; ++h)
    if (h != test::kMoverHead) EXPECT_LT(std::abs(v.grid[0][h].item<double>()), 0.1) << "distractor sender " << h;
  EXPECT_TRUE(std::isnan(v.grid[1][0].item<double>())) << "layer-1 heads are not senders to a layer-1 receiver";
  for (PathInput in : {PathInput::Q, PathInput::K}) {
    PatchingResult qk = patchPath(model, r, test::kReaderLayer, test::kReaderHead, in);
    EXPECT_LT(std::abs(qk.grid[test::kMoverLayer][test::kMoverHead].item<double>()), 1e-4) << "the reader's query and key read nothing";
  }
}

TEST(PathPatchingTest, RejectsAReceiverWithoutSenders) {
  auto model = test::plantedTwoStepModel();
  EXPECT_THROW(patchPath(model, plantedRequest(SweepKind::Heads), 0, 1, PathInput::Q), InputError);
  EXPECT_THROW(patchPath(model, plantedRequest(SweepKind::Heads), 1, 7, PathInput::Q), InputError);
  EXPECT_THROW(pathInputFromString("x"), InputError);
}

}  // namespace headlab
