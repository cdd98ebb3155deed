#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include "headlab/core/errors.h"
#include "headlab/core/incremental_runner.h"
#include "headlab/core/interventions.h"
#include "random_model.h"
#include "tensor_assert.h"

namespace headlab {

class InterventionsTest : public ::testing::Test {
 protected:
  c10::InferenceMode guard;
  HookedTransformer model = test::randomModel("llama");  // 3 layers, 4 heads, 2 kv heads
  at::Tensor tokens = test::randomTokens(2, 9, 50);
};

TEST_F(InterventionsTest, ZeroAblationEqualsZeroingHookZByHand) {
  at::Tensor viaIntervention;
  {
    auto h = install(model, Intervention{InterventionKind::Zero, 1, {2}});
    viaIntervention = model.forward(tokens);
  }
  auto byHand = model.hooks().add("blocks.1.attn.hook_z", [](at::Tensor& z, const HookContext&) {
    z = z.clone();
    z.select(2, 2).zero_();
  });
  EXPECT_TRUE(at::equal(viaIntervention, model.forward(tokens)));
  byHand.remove();
  EXPECT_FALSE(at::allclose(viaIntervention, model.forward(tokens), 1e-4, 1e-4)) << "the ablation must change the logits";
}

TEST_F(InterventionsTest, ScaleByOneIsANoOpAndZeroScaleIsZeroAblation) {
  at::Tensor plain = model.forward(tokens);
  {
    Intervention iv{InterventionKind::Scale, 0, {0, 3}};
    iv.alpha = 1.0;
    auto h = install(model, iv);
    EXPECT_TRUE(at::equal(plain, model.forward(tokens)));
  }
  at::Tensor zeroed;
  {
    auto h = install(model, Intervention{InterventionKind::Zero, 2, {1}});
    zeroed = model.forward(tokens);
  }
  Intervention s{InterventionKind::Scale, 2, {1}};
  s.alpha = 0.0;
  auto h = install(model, s);
  test::expectTensorClose(zeroed, model.forward(tokens), 2e-5);
  EXPECT_FALSE(at::allclose(zeroed, plain, 1e-3, 1e-3)) << "the ablation must change something";
}

TEST_F(InterventionsTest, UniformAttentionIsUniformOverVisibleKeys) {
  at::Tensor pattern;
  auto h = install(model, Intervention{InterventionKind::Uniform, 1, {3}});
  auto cap = model.hooks().add("blocks.1.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { pattern = p.clone(); });
  model.forward(tokens);
  for (int64_t q = 0; q < 9; ++q) {
    at::Tensor row = pattern[1][3][q];
    test::expectTensorClose(row.slice(0, 0, q + 1), at::full({q + 1}, 1.0 / (q + 1)), 1e-4, "row " + std::to_string(q));
    EXPECT_EQ(row.slice(0, q + 1).abs().sum().item<float>(), 0.0f);
  }
  EXPECT_FALSE(at::allclose(pattern[0][2][8], at::full({9}, 1.0 / 9))) << "other heads keep their own pattern";
}

// forwardFrom(lastPositionOnly) runs the final block for the last row alone; its hooks must see that
// row's absolute position (they saw 0, so a uniform ablation there attended to key 0 only), and a
// mean ablation must take the last position's mean.
TEST_F(InterventionsTest, LastRowShortcutGivesHooksTheRowsPosition) {
  const int last = static_cast<int>(model.config().n_layers) - 1;
  at::Tensor residPre;
  auto grab = model.hooks().add(model.hooks().idOf(0, LayerHook::ResidPre), [&](at::Tensor& r, const HookContext&) { residPre = r.clone(); });
  model.forward(tokens);
  grab.remove();
  at::Tensor meanZ;
  auto z = model.hooks().add(model.hooks().idOf(last, LayerHook::Z), [&](at::Tensor& a, const HookContext&) { meanZ = a.mean(0); });
  model.forward(tokens);
  z.remove();
  for (InterventionKind kind : {InterventionKind::Uniform, InterventionKind::Mean}) {
    Intervention iv{kind, last, {1}};
    if (kind == InterventionKind::Mean) iv.source = meanZ;  // [pos, head, d_head]
    auto h = install(model, iv);
    at::Tensor full = model.forward(tokens).slice(1, tokens.size(1) - 1);
    at::Tensor shortcut = model.forwardFrom(0, residPre, /*lastPositionOnly=*/true);
    test::expectTensorClose(shortcut, full, 1e-5, toString(kind));
  }
}

TEST_F(InterventionsTest, UniformRespectsTheSlidingWindow) {
  at::Tensor p = at::softmax(at::randn({1, 2, 8, 8}).masked_fill(at::ones({8, 8}, at::kBool).triu(1), -INFINITY), -1);
  uniformPattern(p, {0}, 0, 3);
  test::expectTensorClose(p[0][0][7], at::tensor({0.f, 0.f, 0.f, 0.f, 0.f, 1.f / 3, 1.f / 3, 1.f / 3}), 1e-4);
}

TEST_F(InterventionsTest, PatternEditsKeepRowsSummingToOne) {
  at::Tensor pattern, plain;
  {
    auto cap = model.hooks().add("blocks.2.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { plain = p.clone(); });
    model.forward(tokens);
  }
  Intervention act{InterventionKind::ActRedistribute, 2, {0, 1}};
  act.alpha = 0.4, act.keys = {0, 3};
  Intervention pasta{InterventionKind::Pasta, 2, {2}};
  pasta.alpha = 0.01, pasta.keys = {4, 5};
  auto h = install(model, std::vector<Intervention>{act, pasta});
  auto cap = model.hooks().add("blocks.2.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { pattern = p.clone(); });
  model.forward(tokens);
  test::expectTensorClose(pattern.sum(-1), at::ones({2, 4, 9}), 1e-4);
  // ACT: sink columns scaled by beta where the row has non-sink keys; row 0 keeps A[0,0] = 1.
  EXPECT_NEAR(pattern[0][0][6][3].item<float>(), 0.4f * plain[0][0][6][3].item<float>(), 1e-6);
  EXPECT_NEAR(pattern[0][1][0][0].item<float>(), 1.0f, 1e-6);
  // PASTA: emphasised keys gain mass.
  EXPECT_GT(pattern[0][2][8].slice(0, 4, 6).sum().item<float>(), plain[0][2][8].slice(0, 4, 6).sum().item<float>());
}

// VAR is ACT's edit on chosen rows with the image span as receiver: in row 6 of head 1 the sink key 0
// keeps half its attention and the freed half goes to keys 2..4 in proportion; other rows, other
// heads and the keys outside the span are untouched, and every row still sums to one.
TEST_F(InterventionsTest, VarIsActOnChosenRowsWithTheImageAsReceiver) {
  at::Tensor plain, edited;
  {
    auto cap = model.hooks().add("blocks.2.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { plain = p.clone(); });
    model.forward(tokens);
  }
  Intervention var{InterventionKind::VarRedistribute, 2, {1}};
  var.alpha = 0.5, var.keys = {0}, var.receiverBegin = 2, var.receiverEnd = 5;
  var.rows = at::zeros({1, 4, 9}, at::kBool);
  var.rows[0][1][6] = true;
  EXPECT_EQ(var.describe()["kind"], "var");
  EXPECT_EQ(var.describe()["rows_edited"], 1);
  auto h = install(model, var);
  auto cap = model.hooks().add("blocks.2.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { edited = p.clone(); });
  model.forward(tokens);
  for (int b = 0; b < 2; ++b) {
    at::Tensor before = plain[b][1][6], after = edited[b][1][6];
    const double freed = 0.5 * before[0].item<double>(), span = before.slice(0, 2, 5).sum().item<double>();
    EXPECT_NEAR(after[0].item<double>(), 0.5 * before[0].item<double>(), 1e-6);
    for (int k = 2; k < 5; ++k)
      EXPECT_NEAR(after[k].item<double>(), before[k].item<double>() * (1 + freed / span), 1e-6) << "key " << k;
    EXPECT_TRUE(at::equal(after.slice(0, 5), before.slice(0, 5))) << "keys outside the span keep their attention";
    EXPECT_TRUE(at::equal(edited[b][1][7], plain[b][1][7])) << "an unchosen row is untouched";
    EXPECT_TRUE(at::equal(edited[b][0], plain[b][0])) << "another head is untouched";
  }
  test::expectTensorClose(edited.sum(-1), at::ones({2, 4, 9}), 1e-4);
  try {
    interventionKindFromString("vra");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("pasta or var"), std::string::npos) << e.what();
  }
}

TEST_F(InterventionsTest, KvGroupAblationEqualsAblatingEveryQueryHeadOfTheGroup) {
  at::Tensor group, heads;
  {
    Intervention iv{InterventionKind::Zero, 1, {1}};
    iv.kvGroup = true;
    auto h = install(model, iv);
    group = model.forward(tokens);
  }
  auto h = install(model, Intervention{InterventionKind::Zero, 1, {2, 3}});
  EXPECT_TRUE(at::equal(group, model.forward(tokens)));
  EXPECT_EQ(targetQueryHeads(Intervention{InterventionKind::Zero, 1, {1}, true}, 4, 2), (std::vector<int>{2, 3}));
}

TEST_F(InterventionsTest, ResampleUsesTheOtherPromptsActivations) {
  at::Tensor other = test::randomTokens(1, 9, 50, 7);
  at::Tensor otherZ, otherLogits;
  {
    auto cap = model.hooks().add("blocks.0.attn.hook_z", [&](at::Tensor& z, const HookContext&) { otherZ = z.clone(); });
    otherLogits = model.forward(other);
  }
  Intervention iv{InterventionKind::Resample, 0, {0, 1, 2, 3}};
  iv.source = otherZ;
  auto h = install(model, iv);
  // With every head of layer 0 resampled, the residual after layer 0's attention differs from the
  // other prompt's only by the token embeddings; check the z itself was replaced.
  at::Tensor seen;
  auto cap = model.hooks().add("blocks.0.hook_attn_out", [&](at::Tensor& a, const HookContext&) { seen = a.clone(); });
  model.forward(other);
  at::Tensor ref = seen.clone();
  model.forward(tokens.slice(0, 0, 1));
  test::expectTensorClose(seen, ref, 1e-4);
}

TEST_F(InterventionsTest, OutOfRangeHeadIsAClearError) {
  try {
    install(model, Intervention{InterventionKind::Zero, 1, {4}});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "head 4 out of range [0, 4) in layer 1");
  }
  EXPECT_THROW(install(model, Intervention{InterventionKind::Zero, 3, {0}}), InputError);
}

TEST(IncrementalRunnerTest, RecomputesFromTheEditedLayerAndEqualsAFullForward) {
  c10::InferenceMode guard;
  auto model = test::randomModel("gpt2");
  std::vector<int64_t> toks{1, 5, 9, 13, 2, 40, 7};
  at::Tensor ids = at::tensor(toks, at::kLong).unsqueeze(0);
  IncrementalRunner runner(model);
  runner.setPrompt(toks);
  test::expectTensorClose(runner.baselineLogits(), model.forward(ids)[0].slice(0, -1), 2e-5);

  std::vector<Intervention> ivs{Intervention{InterventionKind::Zero, 2, {1}}};
  EXPECT_EQ(runner.update(ivs), 2);
  at::Tensor full;
  {
    auto h = install(model, ivs);
    full = model.forward(ids)[0].slice(0, -1);
  }
  test::expectTensorClose(runner.logits(), full, 2e-5);
  EXPECT_FALSE(at::allclose(runner.logits(), runner.baselineLogits(), 1e-4, 1e-4));
  EXPECT_TRUE(at::equal(runner.pattern(1), runner.baselinePattern(1))) << "layers before the edit are reused";

  ivs.push_back(Intervention{InterventionKind::Uniform, 1, {0}});
  EXPECT_EQ(runner.update(ivs), 1);
  EXPECT_EQ(runner.update(ivs), 3) << "nothing changed: nothing recomputed";
  EXPECT_EQ(runner.update({}), 1);
  EXPECT_TRUE(at::equal(runner.logits(), runner.baselineLogits())) << "reset restores the baseline exactly";
}

TEST(IncrementalRunnerTest, RunsFromGivenEmbeddingsAsAVisionPromptDoes) {
  c10::InferenceMode guard;
  auto model = test::randomModel("llama");
  std::vector<int64_t> toks{1, 5, 9, 13, 2, 40, 7};
  at::Tensor ids = at::tensor(toks, at::kLong).unsqueeze(0);
  IncrementalRunner byIds(model), byEmbeds(model);
  byIds.setPrompt(toks);
  byEmbeds.setPrompt(toks, model.embed(ids));
  EXPECT_TRUE(at::equal(byEmbeds.baselineLogits(), byIds.baselineLogits()));
  // Other embeddings (an image spliced in) give another run, and interventions still apply.
  at::Tensor other = model.embed(ids).clone();
  other.slice(1, 1, 3).normal_(0, 1);
  byEmbeds.setPrompt(toks, other);
  EXPECT_FALSE(at::allclose(byEmbeds.baselineLogits(), byIds.baselineLogits(), 1e-4, 1e-4));
  EXPECT_EQ(byEmbeds.update({Intervention{InterventionKind::Zero, 1, {0}}}), 1);
  EXPECT_FALSE(at::allclose(byEmbeds.logits(), byEmbeds.baselineLogits(), 1e-5, 1e-5));
  try {
    byEmbeds.setPrompt(toks, other.slice(1, 0, 5));
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("prompt embeddings have shape [1, 5, ", 0), 0u) << e.what();
  }
}

}  // namespace headlab

#include "headlab/core/activation_cache.h"

namespace headlab {

TEST(ActivationCacheTest, KeepsOnlyTheRequestedHeadsAndPositions) {
  c10::InferenceMode guard;
  auto model = test::randomModel("llama");
  std::vector<int64_t> toks{1, 5, 9, 13, 2, 40, 7};
  CaptureSpec spec{{"blocks.1.attn.hook_pattern", "blocks.0.attn.hook_z", "blocks.2.hook_resid_post"}, {3, 1}, {6, 2}};
  auto got = captureActivations(model, toks, spec);
  at::Tensor full;
  auto h = model.hooks().add("blocks.1.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { full = p.clone(); });
  model.forward(at::tensor(toks, at::kLong).unsqueeze(0));
  ASSERT_EQ(got.at("blocks.1.attn.hook_pattern").sizes().vec(), (std::vector<int64_t>{1, 2, 2, 7}));
  EXPECT_TRUE(at::equal(got.at("blocks.1.attn.hook_pattern")[0][1][1], full[0][1][2])) << "head 1 and query 2: the second requested of each";
  EXPECT_TRUE(at::equal(got.at("blocks.1.attn.hook_pattern")[0][0][0], full[0][3][6])) << "head 3, query 6: the first requested";
  EXPECT_EQ(got.at("blocks.0.attn.hook_z").sizes().vec(), (std::vector<int64_t>{1, 2, 2, 8}));
  EXPECT_EQ(got.at("blocks.2.hook_resid_post").sizes().vec(), (std::vector<int64_t>{1, 2, 32})) << "no head axis: positions only";
  EXPECT_EQ(estimateCaptureBytes(model, spec, 7), static_cast<uint64_t>((2 * 2 * 7 + 2 * 2 * 8 + 2 * 32) * 4));
  EXPECT_THROW(captureActivations(model, toks, {{"blocks.0.attn.hook_z"}, {4}, {}}), InputError);
  EXPECT_THROW(captureActivations(model, toks, {{"blocks.0.attn.hook_z"}, {}, {7}}), InputError);
}

TEST(ActivationCacheTest, MeanOverAPromptSetFeedsAMeanAblation) {
  c10::InferenceMode guard;
  auto model = test::randomModel("gpt2");
  std::vector<std::vector<int64_t>> prompts{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}};
  at::Tensor mean = meanActivation(model, "blocks.1.attn.hook_z", prompts);
  ASSERT_EQ(mean.sizes().vec(), (std::vector<int64_t>{1, 1, 4, 8}));
  at::Tensor byHand = at::zeros({1, 1, 4, 8});
  for (const auto& p : prompts) byHand += captureActivations(model, p, {{"blocks.1.attn.hook_z"}, {}, {}}).at("blocks.1.attn.hook_z").mean(1, true);
  test::expectTensorClose(mean, byHand / 3, 2e-5);
  at::Tensor perPos = meanActivation(model, "blocks.1.attn.hook_z", prompts, true);
  EXPECT_EQ(perPos.size(1), 4);
  EXPECT_THROW(meanActivation(model, "blocks.1.attn.hook_z", {{1, 2}, {1, 2, 3}}, true), InputError);
  Intervention iv{InterventionKind::Mean, 1, {2}};
  iv.source = perPos;
  at::Tensor z;
  auto h1 = install(model, iv);
  auto h2 = model.hooks().add("blocks.1.attn.hook_z", [&](at::Tensor& t, const HookContext&) { z = t.clone(); });
  model.forward(at::tensor(std::vector<int64_t>{20, 21, 22, 23}, at::kLong).unsqueeze(0));
  test::expectTensorClose(z[0].select(1, 2), perPos[0].select(1, 2), 2e-5, "head 2 carries the per-position mean");
}

// The CLI's --edit text: kinds, head lists and ranges, options, one intervention per layer, and a
// message naming the part it could not read.
TEST(InterventionTextTest, ParsesKindsHeadsRangesAndOptions) {
  auto ivs = parseInterventions("act:2-3.*:beta=0.3:threshold=0.2;zero:1.0,1.2;pasta:4.1-2:keys=3+5-7", 5, 4);
  ASSERT_EQ(ivs.size(), 4u);
  EXPECT_EQ(ivs[0].kind, InterventionKind::ActRedistribute);
  EXPECT_EQ(ivs[0].layer, 2);
  EXPECT_EQ(ivs[0].heads, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_DOUBLE_EQ(ivs[0].alpha, 0.3);
  EXPECT_DOUBLE_EQ(ivs[0].threshold, 0.2);
  EXPECT_TRUE(ivs[0].keys.empty()) << "no keys: ACT finds the sinks on each input";
  EXPECT_EQ(ivs[1].layer, 3);
  EXPECT_EQ(ivs[2].kind, InterventionKind::Zero);
  EXPECT_EQ(ivs[2].heads, (std::vector<int>{0, 2}));
  EXPECT_EQ(ivs[3].kind, InterventionKind::Pasta);
  EXPECT_EQ(ivs[3].heads, (std::vector<int>{1, 2}));
  EXPECT_EQ(ivs[3].keys, (std::vector<int64_t>{3, 5, 6, 7}));
  EXPECT_DOUBLE_EQ(ivs[3].alpha, 0.01) << "PASTA's default alpha";
  EXPECT_DOUBLE_EQ(parseInterventions("act:0.0", 5, 4)[0].alpha, 0.4) << "ACT's default beta";
  auto message = [](const std::string& spec) {
    try {
      parseInterventions(spec, 5, 4);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message("zero:5.0"), "edit 'zero:5.0': layer 5 out of range [0, 5)");
  EXPECT_EQ(message("zero:1.4"), "edit 'zero:1.4': head 4 out of range [0, 4)");
  EXPECT_EQ(message("zero:1"), "edit 'zero:1': head '1' is not LAYER.HEAD (e.g. 3.1, 3.*, 2-4.0)");
  EXPECT_EQ(message("scale:1.1:alpha=x"), "edit 'scale:1.1:alpha=x': 'x' is not a number");
  EXPECT_EQ(message("zero:3-1.0"), "edit 'zero:3-1.0': range '3-1' runs backwards");
  EXPECT_NE(message("bogus:1.1").find("unknown intervention kind 'bogus'"), std::string::npos);
  EXPECT_NE(message("resample:1.1").find("needs source activations"), std::string::npos);
  EXPECT_EQ(message(""), "edit '': no intervention given");
}

}  // namespace headlab
