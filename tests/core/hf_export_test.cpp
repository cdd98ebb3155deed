// Writing weights under their Hugging Face names is the exact inverse of reading them: for every
// family's reference checkpoint (tests/reference/make_reference_models.py), the tensors written from
// the loaded weights are the file's own tensors, name for name and value for value.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <cstdlib>
#include <filesystem>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/hf_export.h"
#include "headlab/core/model_loader.h"
#include "headlab/core/tensor_store.h"
#include "headlab/core/vision_language.h"
#include "shared_path.h"
#include "tensor_assert.h"

namespace headlab {
namespace {
std::string referenceFolder(const std::string& name) {
  const char* dir = std::getenv("HEADLAB_REFERENCE_DIR");
  return dir ? std::string(dir) + "/" + name : "";
}

// Every tensor of the file is written back with its own name and values (float32 tolerance for
// Gemma's stored w = scale - 1), and nothing else is written.
void expectSameTensors(const std::map<std::string, at::Tensor>& written, const std::string& file, const std::string& what) {
  TensorStore store;
  readSafetensors(file, store);
  for (const auto& [name, raw] : store.tensors()) {
    auto it = written.find(name);
    if (it == written.end()) {
      ADD_FAILURE() << what << ": '" << name << "' is in the file but was not written";
      continue;
    }
    test::expectTensorClose(it->second.to(at::kFloat), store.get(name), 1e-6, what + " " + name);
  }
  for (const auto& [name, t] : written)
    EXPECT_TRUE(store.has(name)) << what << ": wrote '" << name << "', which the file does not have";
}
}  // namespace

class HfExportTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfExportTest, WritingTheLoadedWeightsGivesBackTheFilesTensors) {
  const std::string folder = referenceFolder(GetParam());
  ASSERT_FALSE(folder.empty()) << "run through ctest (the MakeReferenceModels fixture writes the models)";
  c10::InferenceMode guard;
  LoadedModel m = loadModel(folder);
  expectSameTensors(hfTensors(m.model->config(), m.model->weights()), folder + "/model.safetensors", GetParam());
}

INSTANTIATE_TEST_SUITE_P(Families, HfExportTest,
                         ::testing::Values("gpt2", "mistral", "qwen2", "qwen3", "olmo2", "gemma", "gemma2", "gemma3_text", "phi3",
                                           "gpt_neox"));

TEST(HfExportTest, RealStories260kRoundTripsAndATiedLmHeadIsWrittenAsTheEmbedding) {
  c10::InferenceMode guard;
  const std::string folder = test::sharedPath("models/stories260k-hf");
  LoadedModel m = loadModel(folder);
  expectSameTensors(hfTensors(m.model->config(), m.model->weights()), folder + "/model.safetensors", "stories260K");
  // TinyStories-656K stores its tied matrix only as lm_head.weight; written back, it is the embedding
  // (transformers ties either way) and reloads to the same logits.
  LoadedModel tied = loadModel(referenceFolder("tied_in_lm_head"));
  auto written = hfTensors(tied.model->config(), tied.model->weights());
  EXPECT_EQ(written.count("lm_head.weight"), 0u);
  test::expectTensorClose(written.at("model.embed_tokens.weight"), tied.model->weights().unembed, 0, "tied matrix");
}

TEST(HfExportTest, LlavaWritesBackItsOriginalLayout) {
  c10::InferenceMode guard;
  auto vlm = loadLlava(referenceFolder("llava"));
  expectSameTensors(llavaHfTensors(*vlm), referenceFolder("llava") + "/model.safetensors", "llava");
}

TEST(HfExportTest, AFamilyWithoutAWriterIsRefusedByName) {
  ModelConfig c;
  c.arch = "mamba";
  try {
    hfTensors(c, ModelWeights{});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'mamba'"), std::string::npos) << e.what();
  }
}

}  // namespace headlab
