// GPT-2, Mistral (sliding window, GQA) and Qwen2 (q/k/v biases, GQA) against reference forwards
// written from the published model definitions in tests/reference/make_reference_models.py.
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

#include <cmath>
#include <filesystem>
#include <fstream>

namespace headlab {

class ReferenceForwardTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceForwardTest, LogitsMatchTheIndependentForward) {
  const char* dir = std::getenv("HEADLAB_REFERENCE_DIR");
  ASSERT_NE(dir, nullptr) << "run through ctest (the MakeReferenceModels fixture writes the models)";
  const std::string folder = std::string(dir) + "/" + GetParam();
  c10::InferenceMode guard;
  // <family>_gguf folders hold the family in llama.cpp's layout too (model.gguf): that file is the one tested.
  const bool gguf = std::filesystem::exists(folder + "/model.gguf");
  LoadedModel m = loadModel(gguf ? folder + "/model.gguf" : folder);
  EXPECT_EQ(m.format, gguf ? "gguf" : "hf");
  auto ref = readJsonFile(folder + "/reference.json");
  EXPECT_EQ(m.model->config().arch, ref.value("arch", GetParam()));
  auto tokens = ref["tokens"].get<std::vector<int64_t>>();
  auto shape = ref["shape"].get<std::vector<int64_t>>();
  auto values = ref["logits"].get<std::vector<float>>();
  at::Tensor expected = at::tensor(values).view(shape);
  std::vector<at::Tensor> patterns(m.model->config().n_layers);
  std::vector<HookHandle> hooks;
  for (int l = 0; l < m.model->config().n_layers; ++l)
    hooks.push_back(m.model->hooks().add(m.model->hooks().idOf(l, LayerHook::Pattern),
                                         [&patterns, l](at::Tensor& p, const HookContext&) { patterns[l] = p[0].clone(); }));
  at::Tensor got = m.model->forward(at::tensor(tokens, at::kLong).unsqueeze(0))[0];
  hooks.clear();
  test::expectTensorClose(got, expected, 1e-4, GetParam() + " logits");
  if (ref.contains("patterns"))  // every layer's attention pattern [layer, head, query, key]
    test::expectTensorClose(at::stack(patterns), at::tensor(ref["patterns"].get<std::vector<float>>()).view(ref["patterns_shape"].get<std::vector<int64_t>>()),
                            1e-4, GetParam() + " patterns");
  // Decoding with the KV cache (half the prompt at once, then one token per step, as greedy decoding
  // runs) gives the full forward's logits at every position: sliding windows, local RoPE tables and
  // position offsets included.
  KvCache cache;
  const int64_t half = static_cast<int64_t>(tokens.size()) / 2;
  std::vector<at::Tensor> rows{m.model->forward(at::tensor(std::vector<int64_t>(tokens.begin(), tokens.begin() + half), at::kLong).unsqueeze(0), &cache)[0]};
  for (size_t i = half; i < tokens.size(); ++i)
    rows.push_back(m.model->forward(at::tensor(std::vector<int64_t>{tokens[i]}, at::kLong).unsqueeze(0), &cache)[0]);
  // Dynamic and LongRoPE frequencies follow the length a forward covers, so (as in transformers) keys
  // cached by a shorter forward keep their rotation: the reference decodes the same way.
  const at::Tensor decoded = ref.contains("decoded_logits") ? at::tensor(ref["decoded_logits"].get<std::vector<float>>()).view(shape) : expected;
  test::expectTensorClose(at::cat(rows), decoded, 1e-4, GetParam() + " logits decoded through the KV cache");
}

// rope_linear, rope_llama3, rope_yarn, rope_dynamic and rope_longrope: rope_scaling of each type (d_head
// 16, so each regime moves some of the eight frequencies; the last two with an original context of 16,
// which the 24-token prompt passes and the KV-cache test's prefill does not); tied_in_lm_head: a tied matrix stored only as lm_head.weight; the
// families of tests/reference/families.py with every quirk on (sliding windows shorter than the
// prompt, soft-capping that bites, local RoPE bases, partial rotary, fused and per-head-interleaved
// projections), logits and every layer's pattern; <family>_gguf: the same families converted to
// llama.cpp's GGUF layout by tests/reference/quantize_gguf.py (family_hf_to_gguf), with the quirks a
// GGUF carries (Qwen3 without sliding, Gemma 2/3's query scale 1/sqrt(head_dim)).
INSTANTIATE_TEST_SUITE_P(Architectures, ReferenceForwardTest,
                         ::testing::Values("gpt2", "mistral", "qwen2", "rope_linear", "rope_llama3", "rope_yarn", "rope_dynamic", "rope_longrope", "tied_in_lm_head",
                                           "qwen3", "olmo2", "gemma", "gemma2", "gemma3_text", "phi3", "gpt_neox", "qwen3_gguf",
                                           "olmo2_gguf", "gemma_gguf", "gemma2_gguf", "gemma3_text_gguf", "phi3_gguf", "gpt_neox_gguf"));

namespace {
// A copy of a reference folder with config.json keys replaced.
std::string withConfig(const std::string& name, const nlohmann::json& changes) {
  const std::string src = std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/" + name;
  const std::string dst = std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/" + name + "_edited_" + std::to_string(std::hash<std::string>()(changes.dump()));
  std::filesystem::create_directories(dst);
  std::filesystem::copy_file(src + "/model.safetensors", dst + "/model.safetensors", std::filesystem::copy_options::overwrite_existing);
  nlohmann::json cfg = readJsonFile(src + "/config.json");
  cfg.merge_patch(changes);
  std::ofstream(dst + "/config.json") << cfg.dump();
  return dst;
}

std::string loadError(const std::string& folder) {
  try {
    loadModel(folder);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// A config key that changes the maths and is not implemented is refused with its name, never ignored.
TEST(ArchitectureConfigTest, UnimplementedMathsKeysAreRefusedByName) {
  c10::InferenceMode guard;
  EXPECT_NE(loadError(withConfig("rope_llama3", {{"rope_scaling", {{"rope_type", "mrope"}, {"factor", 2.0}}}})).find("rope_type 'mrope' is not implemented"), std::string::npos);
  EXPECT_NE(loadError(withConfig("rope_llama3", {{"rope_scaling", {{"rope_type", "longrope"}, {"factor", 2.0}}}})).find("missing key 'short_factor'"), std::string::npos);
  EXPECT_NE(loadError(withConfig("rope_longrope", {{"rope_scaling", {{"long_factor", {1.0, 2.0}}}}})).find("short_factor and long_factor need one entry per rotary pair (8), got 8 and 2"), std::string::npos);
  EXPECT_NE(loadError(withConfig("rope_linear", {{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}}})).find("missing key 'low_freq_factor'"), std::string::npos);
  EXPECT_NE(loadError(withConfig("qwen2", {{"mlp_bias", true}})).find("mlp_bias = true changes the computation"), std::string::npos);
  EXPECT_NE(loadError(withConfig("qwen2", {{"partial_rotary_factor", 0.5}})).find("partial_rotary_factor"), std::string::npos);
  EXPECT_NE(loadError(withConfig("gpt2", {{"scale_attn_by_inverse_layer_idx", true}})).find("scale_attn_by_inverse_layer_idx"), std::string::npos);
  EXPECT_NE(loadError(withConfig("gpt2", {{"model_type", "mamba"}})).find("model_type 'mamba' unsupported (expected gpt2, llama, mistral, qwen2, qwen3, olmo2, gemma, gemma2, gemma3_text, phi3, gpt_neox or llava)"), std::string::npos);
  // Harmless values of the same keys load.
  EXPECT_EQ(loadError(withConfig("qwen2", {{"mlp_bias", false}, {"partial_rotary_factor", 1.0}, {"rope_scaling", {{"rope_type", "default"}}}})), "");
}

// Qwen2 slides its window only from layer max_window_layers on: with max_window_layers = n_layers no
// layer slides, and the logits equal the full-attention reference (the window used to hit every layer).
TEST(ArchitectureConfigTest, Qwen2SlidingWindowStartsAtMaxWindowLayers) {
  c10::InferenceMode guard;
  auto ref = readJsonFile(std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/qwen2/reference.json");
  LoadedModel m = loadModel(withConfig("qwen2", {{"use_sliding_window", true}, {"sliding_window", 3}, {"max_window_layers", 2}}));
  EXPECT_EQ(m.model->config().slidingWindowAt(1), 0);
  at::Tensor expected = at::tensor(ref["logits"].get<std::vector<float>>()).view(ref["shape"].get<std::vector<int64_t>>());
  test::expectTensorClose(m.model->forward(at::tensor(ref["tokens"].get<std::vector<int64_t>>(), at::kLong).unsqueeze(0))[0], expected, 1e-4);
  LoadedModel sliding = loadModel(withConfig("qwen2", {{"use_sliding_window", true}, {"sliding_window", 3}, {"max_window_layers", 1}}));
  EXPECT_EQ(sliding.model->config().slidingWindowAt(0), 0);
  EXPECT_EQ(sliding.model->config().slidingWindowAt(1), 3);
  EXPECT_FALSE(at::allclose(sliding.model->forward(at::tensor(ref["tokens"].get<std::vector<int64_t>>(), at::kLong).unsqueeze(0))[0], expected, 1e-3, 1e-3));
}

// The two real checkpoints of ../shared against independent float64 forwards
// (make_reference_models.py's real_model_references).
TEST(RealModelReferenceTest, TinyStories656kGreedyStoryAndLogitsMatch) {
  c10::InferenceMode guard;
  auto ref = readJsonFile(std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/real/reference.json");
  LoadedModel m = loadModel(test::sharedPath("models/tinystories-656k"));  // its tied matrix is only lm_head.weight
  EXPECT_TRUE(m.model->config().tied_embeddings);
  const auto greedy = ref["tinystories_greedy"].get<std::vector<int64_t>>();
  std::vector<int64_t> ids{greedy[0]};
  KvCache cache;
  at::Tensor logits = m.model->forward(at::tensor(ids, at::kLong).unsqueeze(0), &cache);
  while (ids.size() < greedy.size()) {
    ids.push_back(logits[0][-1].argmax().item<int64_t>());
    logits = m.model->forward(at::tensor(std::vector<int64_t>{ids.back()}, at::kLong).unsqueeze(0), &cache);
  }
  EXPECT_EQ(ids, greedy);
  at::Tensor expected = at::tensor(ref["tinystories_logits_24"].get<std::vector<double>>()).view({24, -1});
  test::expectTensorClose(m.model->forward(at::tensor(std::vector<int64_t>(greedy.begin(), greedy.begin() + 24), at::kLong).unsqueeze(0))[0],
                          expected, 1e-4, "TinyStories-656K logits");
  ASSERT_TRUE(m.tokenizer);
  EXPECT_EQ(m.tokenizer->decode(std::vector<int64_t>(greedy.begin() + 1, greedy.begin() + 12)).rfind("Once upon a time", 0), 0u);
}

TEST(RealModelReferenceTest, NanoSortSortsAndItsLayer0AttentionMatches) {
  c10::InferenceMode guard;
  auto ref = readJsonFile(std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/real/reference.json");
  LoadedModel m = loadModel(test::sharedPath("models/nanosort-gpt2"));
  at::Tensor pattern;
  {
    auto h = m.model->hooks().add("blocks.0.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { pattern = p.clone(); });
    m.model->forward(at::tensor(ref["nanosort_tokens"].get<std::vector<int64_t>>(), at::kLong).unsqueeze(0));
  }
  at::Tensor expected = at::tensor(ref["nanosort_pattern0"].get<std::vector<double>>()).view(ref["nanosort_pattern_shape"].get<std::vector<int64_t>>());
  test::expectTensorClose(pattern[0], expected, 1e-5, "nano-sort layer-0 pattern");
  at::manual_seed(7);
  at::Tensor inputs = at::randint(3, {100, 6}, at::kLong);
  at::Tensor seq = inputs;
  for (int step = 0; step < 6; ++step) seq = at::cat({seq, m.model->forward(seq).select(1, -1).argmax(-1, true)}, 1);  // batched greedy
  at::Tensor sorted = std::get<0>(inputs.sort(1));
  EXPECT_TRUE(at::equal(seq.slice(1, 6), sorted)) << "wrongly sorted inputs: " << (seq.slice(1, 6) != sorted).any(1).sum().item<int64_t>();
}

// A tiny LLaVA-1.5 (CLIP tower, projector, LLaMA decoder) in both Hugging Face layouts: the vision
// features at vision_feature_layer and the logits over the spliced prompt match the reference.
class LlavaReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LlavaReferenceTest, VisionTowerAndFullForwardMatchTheIndependentForward) {
  const char* dir = std::getenv("HEADLAB_REFERENCE_DIR");
  ASSERT_NE(dir, nullptr);
  c10::InferenceMode guard;
  const std::string folder = std::string(dir) + "/" + GetParam();
  ASSERT_TRUE(isLlavaFolder(folder));
  auto vlm = loadLlava(folder);
  auto ref = readJsonFile(std::string(dir) + "/llava/reference.json");
  const int64_t S = ref["image_size"];
  at::Tensor pixels = at::tensor(ref["pixels"].get<std::vector<float>>()).view({1, 3, S, S});
  at::Tensor features = vlm->visionFeatures(pixels)[0];
  at::Tensor expectedFeatures = at::tensor(ref["vision_features"].get<std::vector<float>>()).view(ref["vision_shape"].get<std::vector<int64_t>>());
  EXPECT_LT((features - expectedFeatures).abs().max().item<double>(), 1e-4);

  VlmInput in = vlm->prepare(ref["tokens"].get<std::vector<int64_t>>(), pixels);
  EXPECT_EQ(in.imageBegin, ref["image_begin"].get<int64_t>());
  EXPECT_EQ(in.imageEnd, ref["image_end"].get<int64_t>());
  at::Tensor logits = vlm->forward(in)[0];
  at::Tensor expected = at::tensor(ref["logits"].get<std::vector<float>>()).view(ref["shape"].get<std::vector<int64_t>>());
  const double worst = (logits - expected).abs().max().item<double>();
  EXPECT_LT(worst, 1e-4) << "max |logit difference| " << worst;

  // The vision tower's heads are hookable like the decoder's, and see every patch (not causal).
  at::Tensor pattern;
  auto h = vlm->vision().hooks().add("blocks.0.attn.hook_pattern", [&](at::Tensor& p, const HookContext&) { pattern = p.clone(); });
  vlm->visionFeatures(pixels);
  ASSERT_TRUE(pattern.defined());
  EXPECT_GT(pattern[0][0][0].slice(0, 1).sum().item<double>(), 0.0) << "the class token's row reaches later patches";

  // Already-expanded placeholders (newer processors) give the same input; a wrong count is refused.
  std::vector<int64_t> expanded(in.ids.begin(), in.ids.end());
  VlmInput again = vlm->prepare(expanded, pixels);
  EXPECT_TRUE(at::equal(again.embeds, in.embeds));
  std::vector<int64_t> two = ref["tokens"].get<std::vector<int64_t>>();
  two.push_back(vlm->visionConfig().image_token_id);
  EXPECT_THROW(vlm->prepare(two, pixels), InputError);
  // Without pixels the placeholder is dropped: the text-only counterfactual.
  VlmInput textOnly = vlm->prepare(ref["tokens"].get<std::vector<int64_t>>(), at::Tensor());
  EXPECT_EQ(textOnly.embeds.size(1), static_cast<int64_t>(ref["tokens"].size()) - 1);
  EXPECT_EQ(textOnly.imageBegin, -1);
}

INSTANTIATE_TEST_SUITE_P(Layouts, LlavaReferenceTest, ::testing::Values("llava", "llava_new_layout"));

TEST(ClipPreprocessTest, ResizesCropsAndNormalises) {
  VisionTowerConfig c;
  c.image_size = 4;
  // A 8 x 4 (width x height) image: the shorter side is already 4, so only the centre crop acts:
  // columns 2..5 survive. Pixel value = column index * 10 in every channel.
  std::vector<uint8_t> rgb;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 8; ++x)
      for (int ch = 0; ch < 3; ++ch) rgb.push_back(static_cast<uint8_t>(x * 10));
  at::Tensor t = clipPreprocess(rgb, 8, 4, c);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{1, 3, 4, 4}));
  EXPECT_NEAR(t[0][0][1][0].item<double>(), (20 / 255.0 - c.mean[0]) / c.std[0], 1e-5);
  EXPECT_NEAR(t[0][2][3][3].item<double>(), (50 / 255.0 - c.mean[2]) / c.std[2], 1e-5);
  EXPECT_THROW(clipPreprocess(rgb, 7, 4, c), InputError);
  EXPECT_THROW(clipPreprocess({}, 0, 0, c), InputError);
}

}  // namespace headlab


namespace headlab {

// Every quantised GGUF type of the dtype table dequantises bit-exactly to the numpy reference
// (tests/reference/ggml_quants.py) on 64 random blocks with edge values.
TEST(GgmlQuantTest, EveryTypeDequantisesBitExactlyToTheReference) {
  const std::string dir = std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/quants/";
  auto index = readJsonFile(dir + "index.json");
  ASSERT_GE(index.size(), 11u);
  auto readAll = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
  };
  for (auto& [name, e] : index.items()) {
    SCOPED_TRACE(name);
    StoredDtype d = ggmlDtype(e["ggml_id"].get<int64_t>());
    ASSERT_NE(d, nullptr) << "ggml type " << e["ggml_id"] << " is not in the table";
    EXPECT_EQ(std::string(toString(d)), name);
    const int64_t numel = e["blocks"].get<int64_t>() * e["block_elems"].get<int64_t>();
    std::vector<uint8_t> blocks = readAll(dir + name + ".bin"), expected = readAll(dir + name + ".f32");
    ASSERT_EQ(storedBytes(d, numel, name), blocks.size());
    EXPECT_THROW(storedBytes(d, numel + 1, name), WeightError) << "a partial block";
    at::Tensor got = d->toFloat(blocks.data(), numel);
    ASSERT_EQ(got.numel() * 4, static_cast<int64_t>(expected.size()));
    at::Tensor want = at::from_blob(expected.data(), {numel}, at::kFloat);
    const int64_t differing = (got.view(at::kInt) != want.view(at::kInt)).sum().item<int64_t>();
    EXPECT_EQ(differing, 0) << "values not bit-identical; first: "
                            << (differing ? (got.view(at::kInt) != want.view(at::kInt)).nonzero()[0][0].item<int64_t>() : -1);
  }
}

}  // namespace headlab

namespace headlab {

// A LLaMA with 256-wide rows whose matrices are random blocks of every quantised type (each type in
// at least one tensor) gives exactly the logits of its twin holding the same weights dequantised by
// the numpy reference and stored as F32: the GGUF path (block order, shapes, offsets) is exact.
TEST(GgmlQuantTest, KQuantisedModelEqualsItsDequantisedTwin) {
  c10::InferenceMode guard;
  const std::string dir = std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/quants/";
  LoadedModel q = loadModel(dir + "kquant_llama.gguf"), f = loadModel(dir + "kquant_llama_f32.gguf");
  for (const char* type : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL"})
    EXPECT_GT(q.storedTypes[type], 0) << type << " not read";
  EXPECT_EQ(f.storedTypes.size(), 1u);
  at::Tensor ids = at::tensor(std::vector<int64_t>{1, 17, 200, 3, 99, 255, 0, 42, 7, 128, 64, 5}, at::kLong).unsqueeze(0);
  at::Tensor a = q.model->forward(ids), b = f.model->forward(ids);
  EXPECT_TRUE(at::isfinite(a).all().item<bool>());
  test::expectTensorClose(a, b, 0.0, "quantised vs dequantised twin");
}

// stories260K's GGUF quantised to Q8_0 by ggml's reference quantiser still writes llama2.c's greedy
// story; Q4_0 loads and stays close to the float model (its text drifts, as llama.cpp's does).
TEST(GgmlQuantTest, QuantisedStories260kGeneratesTheReferenceText) {
  const std::string dir = std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/quants/";
  const std::string reference = readJsonFile(test::sharedPath("testdata/stories260k-reference.json"))["stories260k_greedy_64"]["text"];
  LoadedModel q8 = loadModel(dir + "stories260K_Q8_0.gguf");
  EXPECT_GT(q8.storedTypes["Q8_0"], 0);
  ASSERT_TRUE(q8.tokenizer);
  auto ids = q8.tokenizer->encode("Once upon a time", true);
  GenerateOptions g;
  g.maxNewTokens = 64 + 1 - static_cast<int64_t>(ids.size());
  EXPECT_EQ(renderGeneration(*q8.tokenizer, ids, generate(*q8.model, ids, g, q8.tokenizer->bos(), q8.tokenizer->eos())), reference);
  c10::InferenceMode guard;
  LoadedModel q4 = loadModel(dir + "stories260K_Q4_0.gguf"), full = loadModel(test::sharedPath("models/stories260k/stories260K.gguf"));
  EXPECT_GT(q4.storedTypes["Q4_0"], 0);
  at::Tensor t = at::tensor(ids, at::kLong).unsqueeze(0);
  at::Tensor p4 = at::softmax(q4.model->forward(t)[0][-1], -1), pf = at::softmax(full.model->forward(t)[0][-1], -1);
  EXPECT_LT((p4 - pf).abs().sum().item<double>() / 2, 0.5) << "total variation of the next-token distribution";
}

}  // namespace headlab


namespace headlab {

// GPT-2 from GGUF, written as llama.cpp's converter writes it (transposed Conv1D matrices, its tensor
// names, gpt2.* keys): the same logits as the Hugging Face reference.
// Gemma in bfloat16: the RMSNorm scale 1 + w is formed in float32 from the stored bfloat16 w, as
// transformers' GemmaRMSNorm does (it used to be baked in at load and rounded to bfloat16 once more).
TEST(ArchitectureConfigTest, GemmaNormScaleIsOnePlusWInFloat32UnderBfloat16) {
  c10::InferenceMode guard;
  const std::string folder = std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/gemma2";
  LoadOptions bf16;
  bf16.dtype = "bfloat16";
  LoadedModel m = loadModel(folder, bf16);
  EXPECT_EQ(m.model->config().norm_weight_offset, 1.0);
  const at::Tensor w = m.model->weights().layers[0].ln1_w;
  ASSERT_EQ(w.scalar_type(), at::kBFloat16);
  at::Tensor residPre, normalized;
  std::vector<HookHandle> hooks;
  hooks.push_back(m.model->hooks().add(m.model->hooks().idOf(0, LayerHook::ResidPre), [&](at::Tensor& t, const HookContext&) { residPre = t.clone(); }));
  hooks.push_back(m.model->hooks().add(m.model->hooks().idOf(0, LayerHook::Ln1Normalized), [&](at::Tensor& t, const HookContext&) { normalized = t.clone(); }));
  m.model->forward(at::arange(12, at::kLong).unsqueeze(0));
  const at::Tensor x = residPre.to(at::kFloat);
  const at::Tensor expected = (x * at::rsqrt(x.pow(2).mean(-1, true) + m.model->config().norm_eps) * (w.to(at::kFloat) + 1.0)).to(at::kBFloat16);
  EXPECT_TRUE(at::equal(normalized, expected)) << "max |diff| " << (normalized.to(at::kFloat) - expected.to(at::kFloat)).abs().max().item<float>();
  // The old way (1 + w rounded to bfloat16 first) differs on this model.
  const at::Tensor rounded = (x * at::rsqrt(x.pow(2).mean(-1, true) + m.model->config().norm_eps) * (w + 1).to(at::kFloat)).to(at::kBFloat16);
  EXPECT_FALSE(at::equal(rounded, expected));
}

// Phi-3's LongRoPE in llama.cpp's layout (factors as rope_factors_long/short tensors, the original
// context and attention factor as keys) gives the Hugging Face folder's logits, past the original context.
TEST(GgufLayoutTest, Phi3LongRopeFromGgufMatchesTheHuggingFaceFolder) {
  c10::InferenceMode guard;
  const std::string dir = std::string(std::getenv("HEADLAB_REFERENCE_DIR")) + "/phi3_longrope";
  LoadedModel hf = loadModel(dir), gguf = loadModel(dir + "/model.gguf");
  const RopeScaling &a = hf.model->config().rope_scaling, &b = gguf.model->config().rope_scaling;
  ASSERT_EQ(b.kind, RopeScalingKind::LongRope);
  EXPECT_EQ(b.original_max_positions, 16);
  ASSERT_EQ(b.long_factor.size(), 4u);
  ASSERT_EQ(b.short_factor.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {  // GGUF holds them as float32, which is what the forward uses
    EXPECT_FLOAT_EQ(static_cast<float>(b.long_factor[i]), static_cast<float>(a.long_factor[i]));
    EXPECT_FLOAT_EQ(static_cast<float>(b.short_factor[i]), static_cast<float>(a.short_factor[i]));
  }
  EXPECT_NEAR(b.attention_factor, a.attention_factor, 1e-6);
  EXPECT_NEAR(a.attention_factor, std::sqrt(1 + std::log(4.0) / std::log(16.0)), 1e-9);
  at::Tensor tokens = at::arange(24, at::kLong).remainder(hf.model->config().d_vocab).unsqueeze(0);
  test::expectTensorClose(gguf.model->forward(tokens), hf.model->forward(tokens), 1e-5, "Phi-3 LongRoPE, GGUF vs Hugging Face");
  // Within the original context the short factors apply: a 12-token prompt's logits differ from the
  // first 12 rows of the 24-token run (which used the long ones).
  EXPECT_GT((hf.model->forward(tokens.slice(1, 0, 12)) - hf.model->forward(tokens).slice(1, 0, 12)).abs().max().item<float>(), 1e-3);
}

TEST(GgufLayoutTest, Gpt2FromGgufMatchesTheReference) {
  c10::InferenceMode guard;
  const std::string dir = std::getenv("HEADLAB_REFERENCE_DIR");
  LoadedModel m = loadModel(dir + "/gpt2_gguf/gpt2.gguf");
  EXPECT_EQ(m.format, "gguf");
  EXPECT_EQ(m.model->config().arch, "gpt2");
  auto ref = readJsonFile(dir + "/gpt2/reference.json");
  at::Tensor expected = at::tensor(ref["logits"].get<std::vector<float>>()).view(ref["shape"].get<std::vector<int64_t>>());
  test::expectTensorClose(m.model->forward(at::tensor(ref["tokens"].get<std::vector<int64_t>>(), at::kLong).unsqueeze(0))[0], expected, 1e-4,
                          "GPT-2 GGUF logits");
}

}  // namespace headlab
