// The vision probes (VHD, VHR, VAR, look) and vision-language patching on the tiny LLaVA of the
// ReferenceModels fixture, and VAR's redistribution on hand-made rows (issue #17's worked example).
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/generate.h"
#include "headlab/core/interventions.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/patching.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"
#include "headlab/plugins/probe_plugin.h"
#include "../../plugins/common/probe_util.h"
#include "../../plugins/retrieval/retrieval_scoring.h"
#include "../../plugins/vision/vision_scoring.h"
#include "random_model.h"
#include "shared_path.h"
#include "tensor_assert.h"

#include <filesystem>
#include <fstream>

namespace headlab {

// The vision probes on the tiny LLaVA, with invariants that hold for any weights (issue #10).
class VisionProbesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("HEADLAB_REFERENCE_DIR");
    ASSERT_NE(dir, nullptr);
    vlm = loadLlava(std::string(dir) + "/llava");
    auto ref = readJsonFile(std::string(dir) + "/llava/reference.json");
    const int64_t S = ref["image_size"];
    pixels = at::tensor(ref["pixels"].get<std::vector<float>>()).view({1, 3, S, S});
    tokens = ref["tokens"].get<std::vector<int64_t>>();
  }
  nlohmann::json run(const std::string& probe, nlohmann::json params) {
    params["tokens"] = tokens;
    auto p = plugins::ProbeRegistry::instance().create(probe);
    plugins::ProbeContext ctx{vlm->language(), nullptr, std::move(params), {}, vlm.get(), &pixels};
    return p->run(ctx);
  }
  std::unique_ptr<VisionLanguageModel> vlm;
  at::Tensor pixels;
  std::vector<int64_t> tokens;
};

// Answering about an image with a KV cache (the prompt once, then a position per token) gives the
// tokens that a full forward per token gives, and so does a text prompt given as embeddings.
TEST_F(VisionProbesTest, CachedGenerationFromEmbeddingsEqualsFullForwards) {
  c10::InferenceMode guard;
  VlmInput in = vlm->prepare(tokens, pixels);
  GenerateOptions g;
  g.maxNewTokens = 6;
  g.stopAtEos = false;
  const std::vector<int64_t> cached = generateFromEmbeddings(vlm->language(), in.embeds, g);
  std::vector<int64_t> full;
  for (int i = 0; i < 6; ++i) {
    const int64_t next = vlm->forward(in)[0][-1].argmax().item<int64_t>();
    full.push_back(next);
    in.embeds = at::cat({in.embeds, vlm->language().embed(at::tensor({next}, at::kLong).unsqueeze(0), in.embeds.size(1))}, 1);
  }
  EXPECT_EQ(cached, full);
  EXPECT_GT(std::set<int64_t>(full.begin(), full.end()).size(), 1u) << "a constant answer would not test the cache";

  HookedTransformer& lm = vlm->language();
  const std::vector<int64_t> text{1, 5, 7, 9};
  at::Tensor textEmbeds = lm.embed(at::tensor(text, at::kLong).unsqueeze(0));
  EXPECT_EQ(generateFromEmbeddings(lm, textEmbeds, g), generate(lm, text, g));

  EXPECT_THROW(generateFromEmbeddings(lm, textEmbeds.squeeze(0), g), InputError);
  EXPECT_THROW(generateFromEmbeddings(lm, textEmbeds.slice(1, 0, 0), g), InputError);
  EXPECT_THROW(generateFromEmbeddings(lm, at::zeros({1, lm.config().n_ctx + 1, lm.config().d_model}), g), InputError);
}

// Patching one image into another (same question): positions before the image never see it, and
// text positions at layer 0 are plain token embeddings, so patching them changes nothing; patching
// image positions does. Both exact engines agree, and a text prompt given as its own embeddings
// patches exactly as its tokens do.
TEST_F(VisionProbesTest, PatchingBetweenTwoImagesReachesOnlyWhereTheImageDoes) {
  HookedTransformer& lm = vlm->language();
  at::Tensor other = pixels.clone();
  other.slice(2, 0, 4).slice(3, 0, 4).mul_(-1.0).add_(0.5);  // the top-left patch differs
  PatchingRequest r;
  {
    c10::InferenceMode guard;
    VlmInput clean = vlm->prepare(tokens, pixels), corrupted = vlm->prepare(tokens, other);
    r.clean = clean.ids, r.corrupted = corrupted.ids;
    r.cleanEmbeds = clean.embeds, r.corruptedEmbeds = corrupted.embeds;
    // The answer pair the image change moves most.
    at::Tensor diff = vlm->forward(clean)[0][-1] - vlm->forward(corrupted)[0][-1];
    r.answer = diff.argmax().item<int64_t>(), r.wrong = diff.argmin().item<int64_t>();
  }
  r.sweep = SweepKind::ResidPos;
  const PatchingResult batched = patchBatched(lm, r), perForward = patchPerForward(lm, r);
  ASSERT_GT(batched.cleanMetric - batched.corruptedMetric, 1e-3);
  test::expectTensorClose(batched.grid, perForward.grid, 1e-3);
  const auto first = std::find(r.clean.begin(), r.clean.end(), vlm->visionConfig().image_token_id) - r.clean.begin();
  const int64_t end = first + vlm->visionConfig().imageTokens(), T = static_cast<int64_t>(r.clean.size());
  ASSERT_GT(first, 0);
  ASSERT_LT(end, T);
  double imageEffect = 0;
  for (int64_t l = 0; l < lm.config().n_layers; ++l)
    for (int64_t p = 0; p < first; ++p) EXPECT_NEAR(batched.grid[l][p].item<double>(), 0.0, 1e-5) << "layer " << l << " pos " << p;
  for (int64_t p = end; p < T; ++p) EXPECT_NEAR(batched.grid[0][p].item<double>(), 0.0, 1e-5) << "layer 0 pos " << p;
  for (int64_t p = first; p < end; ++p) imageEffect = std::max(imageEffect, std::abs(batched.grid[0][p].item<double>()));
  EXPECT_GT(imageEffect, 0.01);
  EXPECT_EQ(patchAttribution(lm, r).grid.sizes(), batched.grid.sizes());

  PatchingRequest text;
  text.clean = {1, 5, 7, 9, 11}, text.corrupted = {1, 5, 8, 9, 11};
  text.answer = 12, text.wrong = 14;
  const PatchingResult byTokens = patchBatched(lm, text);
  {
    c10::InferenceMode guard;
    text.cleanEmbeds = lm.embed(at::tensor(text.clean, at::kLong).unsqueeze(0));
    text.corruptedEmbeds = lm.embed(at::tensor(text.corrupted, at::kLong).unsqueeze(0));
  }
  EXPECT_TRUE(at::equal(patchBatched(lm, text).grid, byTokens.grid));
  PatchingRequest half = text;
  half.corruptedEmbeds = at::Tensor();
  EXPECT_THROW(patchBatched(lm, half), InputError);
  half.corruptedEmbeds = text.corruptedEmbeds.slice(1, 0, 4);
  EXPECT_THROW(patchBatched(lm, half), InputError);
}

// Moving a VLM: the decoder takes the dtype, the vision tower and projector stay float32, and the
// image prompt still runs (tests/cuda/run.sh checks the same on a GPU against the CPU).
TEST_F(VisionProbesTest, MovesToAnotherDtypeWithTheTowerInFloat32) {
  c10::InferenceMode guard;
  const at::Tensor full = vlm->forward(vlm->prepare(tokens, pixels))[0][-1];
  vlm->to(at::kCPU, at::kBFloat16);
  EXPECT_EQ(vlm->language().dtype(), at::kBFloat16);
  EXPECT_EQ(vlm->visionFeatures(pixels).scalar_type(), at::kFloat);
  VlmInput in = vlm->prepare(tokens, pixels);
  EXPECT_EQ(in.embeds.scalar_type(), at::kBFloat16);
  const at::Tensor half = vlm->forward(in)[0][-1].to(at::kFloat);
  EXPECT_TRUE(at::isfinite(half).all().item<bool>());
  EXPECT_LT((half - full).abs().max().item<float>(), 0.1f * full.abs().max().item<float>());
}

TEST_F(VisionProbesTest, VhdIsZeroAgainstItselfAndPositiveWhereHeadsSeeTheImage) {
  auto same = run("vhd", {{"counterfactual", "same"}, {"outlier_filter", false}});
  for (double v : same["vhd_raw"]["values"]) EXPECT_EQ(v, 0.0);
  auto vhd = run("vhd", {{"outlier_filter", false}});
  auto look = run("look", {{"general_prompt", ""}});
  const auto& d = vhd["vhd_raw"]["values"];
  const auto& a = look["grid"]["values"];
  ASSERT_EQ(d.size(), a.size());
  for (size_t i = 0; i < d.size(); ++i)
    if (a[i].get<double>() > 1e-3) EXPECT_GT(d[i].get<double>(), 0.0) << "head " << i << " attends to the image";
}

TEST_F(VisionProbesTest, VhrWithAlphaOneChangesNothingAndAlphaTwoDoes) {
  auto one = run("vhd", {{"vhr", true}, {"vhr_alpha", 1.0}});
  EXPECT_EQ(one["vhr"]["max_abs_logit_change"].get<double>(), 0.0);
  auto two = run("vhd", {{"vhr", true}});
  EXPECT_GT(two["vhr"]["max_abs_logit_change"].get<double>(), 0.0);
  // 2 layers: the default reinforces the second layer; heads above its median (4 heads: 2).
  ASSERT_EQ(two["vhr"]["heads"].size(), 1u);
  EXPECT_EQ(two["vhr"]["heads"][0]["layer"], 1);
  EXPECT_EQ(two["vhr"]["heads"][0]["heads"].size(), 2u);
}

TEST_F(VisionProbesTest, TVhdSumsTheTopHeadsOfEachLayer) {
  auto r = run("vhd", {{"generate", 2}, {"topk", 2}});
  ASSERT_EQ(r["t_vhd"].size(), 2u);
  at::Tensor g = at::tensor(r["grid"]["values"].get<std::vector<double>>()).view({2, 4});
  EXPECT_NEAR(r["t_vhd"][0]["t_vhd"].get<double>(), std::get<0>(g.topk(2, 1)).sum().item<double>(), 1e-9);
}

// look reads the question and the general-description prompt through one conversation template (the
// reference's), and the general prompt stays text when the question comes as token ids.
TEST_F(VisionProbesTest, LookAppliesOneTemplateToTheQuestionAndTheGeneralPrompt) {
  auto tok = loadTokenizer(std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/llava/tokenizer.json");
  auto probe = plugins::ProbeRegistry::instance().create("look");
  plugins::ProbeContext ctx{vlm->language(), tok.get(),
                            {{"layer", 1}, {"prompt", "what"}, {"general_prompt", "all"}, {"template", "USER: {prompt} ASSISTANT:"}},
                            {}, vlm.get(), &pixels};
  auto r = probe->run(ctx);
  EXPECT_EQ(r["prompt_text"], "USER: what ASSISTANT:");
  EXPECT_EQ(r["general_prompt_text"], "USER: all ASSISTANT:");
  ASSERT_TRUE(r.contains("relative_map"));
  ctx.params["tokens"] = tokens;
  auto withIds = probe->run(ctx);
  EXPECT_EQ(withIds["general_prompt_text"], "USER: all ASSISTANT:");
  bool allOne = true;  // what dividing the question's map by itself (the general prompt run on the question's ids) gives
  for (double v : withIds["relative_map"]["values"]) allOne = allOne && std::abs(v - 1.0) < 1e-6;
  EXPECT_FALSE(allOne) << "the general map is its own prompt's, not the question's";
  ctx.params["template"] = "no placeholder";
  EXPECT_THROW(probe->run(ctx), InputError);
}

TEST_F(VisionProbesTest, LookMapIsTheHeadAverageOverThePatchGrid) {
  auto r = run("look", {{"layer", 1}, {"general_prompt", ""}});
  EXPECT_EQ(r["map"]["side"], 3);  // 12 x 12 pixels, 4 x 4 patches
  const auto& map = r["map"]["values"];
  ASSERT_EQ(map.size(), 9u);
  double sum = 0, mean = 0;
  for (double v : map) sum += v;
  for (int h = 0; h < 4; ++h) mean += r["grid"]["values"][4 + h].get<double>() / 4;
  EXPECT_NEAR(sum, mean, 1e-5);
  for (double v : r["grid"]["values"]) EXPECT_TRUE(v >= 0 && v <= 1 + 1e-6);
  // Without an image the vision probes say what they need.
  auto p = plugins::ProbeRegistry::instance().create("look");
  plugins::ProbeContext ctx{vlm->language(), nullptr, {{"tokens", tokens}}, {}};
  EXPECT_THROW(p->run(ctx), InputError);
}

}  // namespace headlab

namespace headlab {

TEST(VarRedistributionTest, SinkMassMovesToTheOtherImageTokensAndRowsStillSumToOne) {
  // Keys: 0 = BOS, 1..3 = image (1 is a visual sink), 4 = text. Row 0 is selected, row 1 is not.
  at::Tensor A = at::tensor(std::vector<float>{0.1f, 0.5f, 0.2f, 0.2f, 0.0f, 0.2f, 0.4f, 0.1f, 0.1f, 0.2f}).view({1, 1, 2, 5});
  at::Tensor original = A.clone();
  at::Tensor rows = at::tensor(std::vector<uint8_t>{1, 0}).to(at::kBool).view({1, 1, 2});
  redistributeSinks(A, {0}, {{1}, 0.6, 1, 4, rows});
  // Sink keeps 0.6 * 0.5 = 0.3; the freed 0.2 goes to keys 2 and 3 in proportion (0.2 : 0.2).
  EXPECT_NEAR(A[0][0][0][1].item<double>(), 0.3, 1e-6);
  EXPECT_NEAR(A[0][0][0][2].item<double>(), 0.3, 1e-6);
  EXPECT_NEAR(A[0][0][0][3].item<double>(), 0.3, 1e-6);
  EXPECT_NEAR(A[0][0][0][0].item<double>(), 0.1, 1e-6) << "non-image keys keep their attention";
  test::expectTensorClose(A.sum(-1), original.sum(-1), 1e-4);
  EXPECT_TRUE(at::equal(A[0][0][1], original[0][0][1])) << "unselected rows are untouched";
}

// Issue #17's worked example: keys [BOS, img_sink, img_a, img_b, txt] = [.5, .1, .2, .1, .1], sinks BOS
// (a text sink) and img_sink, p = 0.6: both sinks keep 0.6 of their attention and the freed 0.24 goes
// to img_a and img_b in proportion 2 : 1, giving [.30, .06, .36, .18, .10].
TEST(VarRedistributionTest, TextSinksAreScaledAndGiveTheirBudgetToTheImage) {
  at::Tensor A = at::tensor(std::vector<float>{0.5f, 0.1f, 0.2f, 0.1f, 0.1f}).view({1, 1, 1, 5});
  at::Tensor rows = at::ones({1, 1, 1}, at::kBool);
  redistributeSinks(A, {0}, {{0, 1}, 0.6, 1, 4, rows});
  test::expectTensorClose(A.flatten(), at::tensor(std::vector<float>{0.30f, 0.06f, 0.36f, 0.18f, 0.10f}), 1e-6, "VAR row");
}

TEST_F(VisionProbesTest, VarFindsSinksAndKeepsTheModelWhenPIsOne) {
  // tau = 1.5 makes sinks of this random model's image tokens (tau = 20 is for trained LLaVA).
  auto keep = run("var", {{"tau", 1.5}, {"p", 1.0}, {"first_layer", 0}});
  EXPECT_EQ(keep["max_abs_logit_change"].get<double>(), 0.0);
  auto r = run("var", {{"tau", 1.5}, {"first_layer", 0}});
  size_t sinks = 0;
  for (const auto& l : r["sinks"]) sinks += l["sink_tokens"].size();
  EXPECT_GT(sinks, 0u);
  for (int64_t k : r["sinks"][0]["sink_tokens"]) EXPECT_TRUE(k >= r["image_span"][0].get<int64_t>() && k < r["image_span"][1].get<int64_t>());
  double rowsEdited = 0;
  for (double v : r["grid"]["values"]) rowsEdited += v;
  if (rowsEdited > 0) EXPECT_GT(r["max_abs_logit_change"].get<double>(), 0.0);
  const auto strict = run("var", {});
  for (const auto& l : strict["sinks"]) EXPECT_TRUE(l["sink_tokens"].empty()) << "no token of a random model passes tau = 20";
}

// VAR as MICV-yonsei/VisAttnSink runs it, against an independent float64 reference on the tiny LLaVA
// (tests/reference/make_reference_models.py: var_reference): sink dimensions found from the first token,
// sinks only on those dimensions, HeadFork's portion with its 1e-6 per image key, layers without a visual
// sink left alone, and the selection made online (layer 1 sees layer 0's redistribution) or on the
// unedited forward; the two differ on this model, and each matches its reference.
TEST_F(VisionProbesTest, VarMatchesTheReferenceOnlineAndOffline) {
  const auto cases = readJsonFile(std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/llava/var_reference.json");
  ASSERT_EQ(cases.size(), 2u);
  for (const auto& ref : cases) {
    SCOPED_TRACE(ref["online"].get<bool>() ? "online" : "on the unedited forward");
    auto r = run("var", {{"tau", ref["tau"]}, {"rho", ref["rho"]}, {"min_image_attention", ref["summ"]}, {"p", ref["p"]},
                         {"first_layer", ref["first_layer"]}, {"except_last_layer", ref["except_last"]}, {"online", ref["online"]}});
    EXPECT_EQ(r["sink_dims"], ref["sink_dims"]);
    EXPECT_TRUE(r["sink_dims_discovered"].get<bool>());
    for (size_t l = 0; l < ref["sinks"].size(); ++l) {
      EXPECT_EQ(r["sinks"][l]["sink_tokens"], ref["sinks"][l][0]) << "layer " << l;
      EXPECT_EQ(r["sinks"][l]["text_sink_tokens"], ref["sinks"][l][1]) << "layer " << l;
    }
    std::vector<double> grid;
    for (const auto& row : ref["grid"]) for (double v : row) grid.push_back(v);
    EXPECT_EQ(r["grid"]["values"].get<std::vector<double>>(), grid);
    EXPECT_NEAR(r["max_abs_logit_change"].get<double>(), ref["max_abs_logit_change"].get<double>(), 1e-4);
  }
  // Given sink dimensions are used as they are; one out of range is refused.
  auto given = run("var", {{"tau", 1.5}, {"first_layer", 0}, {"sink_dims", {0}}});
  EXPECT_FALSE(given["sink_dims_discovered"].get<bool>());
  EXPECT_THROW(run("var", {{"sink_dims", {1 << 20}}}), InputError);
}

// VHD's default prompt is LLaVA-1.5's conversation when the tokenizer spells it (issue #17): a Llama-3
// tokenizer with <image> as a special token does; the tiny LLaVA's word-level vocabulary does not, and
// keeps the bare prompt (its words would become <unk>).
TEST_F(VisionProbesTest, VhdUsesTheLlavaConversationWhenTheTokenizerSpellsIt) {
  nlohmann::json j = readJsonFile(test::sharedPath("models/llama3-tokenizer/tokenizer.json"));
  int64_t imageId = -1;
  for (auto& t : j["added_tokens"])
    if (t["content"] == "<|reserved_special_token_0|>") t["content"] = "<image>", imageId = t["id"];
  ASSERT_GE(imageId, 0);
  const std::string dir = ::testing::TempDir() + "/llava_like_tokenizer";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  auto llama3 = loadTokenizer(dir + "/tokenizer.json");
  EXPECT_STREQ(plugins::conversationTemplate(llama3.get(), imageId, "auto").c_str(), plugins::kLlavaV1Template);
  EXPECT_EQ(plugins::conversationTemplate(llama3.get(), imageId + 1, "auto"), "{prompt}") << "<image> is not that model's image token";
  EXPECT_EQ(plugins::conversationTemplate(llama3.get(), imageId, "Q: {prompt}"), "Q: {prompt}");
  EXPECT_THROW(plugins::conversationTemplate(llama3.get(), imageId, "no placeholder"), InputError);
  const std::string llava = plugins::applyTemplate(plugins::kLlavaV1Template, "What is this?");
  EXPECT_NE(llava.find("USER: <image>\nWhat is this? ASSISTANT:"), std::string::npos);
  const auto ids = llama3->encode(llava, true);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), imageId), 1);

  auto word = loadTokenizer(std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/llava/tokenizer.json");
  const int64_t image = vlm->visionConfig().image_token_id;
  EXPECT_EQ(plugins::conversationTemplate(word.get(), image, "auto"), "{prompt}");
  // On the probe: the template it used is reported, and an explicit one is applied to the text prompt.
  auto p = plugins::ProbeRegistry::instance().create("vhd");
  plugins::ProbeContext ctx{vlm->language(), word.get(), {{"prompt", "w7 w11"}, {"template", "w5 <image> {prompt} w9"}}, {}, vlm.get(), &pixels};
  const auto r = p->run(ctx);
  EXPECT_EQ(r["template_used"], "w5 <image> {prompt} w9");
  EXPECT_EQ(r["prompt_ids"], nlohmann::json({1, 5, image, 7, 11, 9}));
}

}  // namespace headlab
