// The demo recipe: seeded and reproducible, written atomically as a loadable Hugging Face folder.
// The full training (about 90 s) runs in the DemoReport CLI test; these use a few steps.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <filesystem>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/demo_model.h"
#include "headlab/core/demo_vlm.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"
#include "headlab/core/errors.h"
#include "headlab/core/model_loader.h"

namespace headlab {

namespace fs = std::filesystem;

class DemoModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("headlab_demo_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    quick.steps = 6;
    quick.batch = 4;
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
  DemoTrainingOptions quick;
};

TEST_F(DemoModelTest, TrainingWritesALoadableHuggingFaceFolder) {
  trainDemoModel((dir / "demo").string(), quick);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "training.json"})
    EXPECT_TRUE(fs::exists(dir / "demo" / f)) << f;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1) << "no temporary folder left";
  LoadedModel m = loadModel((dir / "demo").string());
  EXPECT_EQ(m.model->config().arch, "gpt2");
  EXPECT_EQ(m.tokenizer->kind(), "tokenizer.json WordLevel");
  auto ids = m.tokenizer->encode("the secret code of anna is 4 7 2 .", true);
  EXPECT_EQ(ids.front(), 2) << "BOS first";
  EXPECT_EQ(m.tokenizer->decode(ids), "the secret code of anna is 4 7 2 .");
  auto training = readJsonFile((dir / "demo" / "training.json").string());
  EXPECT_EQ(training["loss_curve"].size(), 1u) << "the loss curve is kept with the model";
}

TEST_F(DemoModelTest, TheSameSeedGivesIdenticalWeights) {
  trainDemoModel((dir / "a").string(), quick);
  trainDemoModel((dir / "b").string(), quick);
  TensorStore a, b;
  readSafetensors((dir / "a" / "model.safetensors").string(), a);
  readSafetensors((dir / "b" / "model.safetensors").string(), b);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& [name, t] : a.tensors()) EXPECT_TRUE(at::equal(a.get(name), b.get(name))) << name;
  quick.seed = 7;
  trainDemoModel((dir / "c").string(), quick);
  TensorStore c;
  readSafetensors((dir / "c" / "model.safetensors").string(), c);
  EXPECT_FALSE(at::equal(a.get("transformer.wte.weight"), c.get("transformer.wte.weight")));
}

TEST_F(DemoModelTest, CancelledTrainingLeavesNothing) {
  EXPECT_THROW(trainDemoModel((dir / "demo").string(), quick, [](double f, const std::string&) { return f < 0.5; }), CancelledError);
  EXPECT_FALSE(fs::exists(dir / "demo"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 0);
}

TEST_F(DemoModelTest, TasksPutTheNeedleAndTheQuestionInPlace) {
  DemoTasks tasks(3);
  DemoExample r = tasks.retrieval(40, 0.5);
  EXPECT_EQ(r.words[r.needleBegin], "the");
  EXPECT_EQ(r.words[r.needleBegin + 1], "secret");
  EXPECT_EQ(r.words[r.targetBegin - 1], "is");
  std::string answer = r.words[r.targetBegin] + " " + r.words[r.targetBegin + 1] + " " + r.words[r.targetBegin + 2];
  EXPECT_EQ(answer, r.answer);
  DemoExample ind = tasks.induction(10);
  ASSERT_EQ(ind.words.size(), 20u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(ind.words[i], ind.words[i + 10]);
}

}  // namespace headlab

namespace headlab {

// demo-vlm: the same guarantees as the text demo, and scenes whose answers match their pixels.
TEST_F(DemoModelTest, DemoVlmTrainsIntoALoadableLlavaFolderReproducibly) {
  DemoVlmOptions o;
  o.steps = 4, o.batch = 4;
  trainDemoVlm((dir / "vlm_a").string(), o);
  trainDemoVlm((dir / "vlm_b").string(), o);
  ASSERT_TRUE(isLlavaFolder((dir / "vlm_a").string()));
  auto vlm = loadLlava((dir / "vlm_a").string());
  auto tok = loadTokenizer((dir / "vlm_a").string());
  auto ids = tok->encode("<image> what colour is at top left ?", true);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], vlm->visionConfig().image_token_id);
  TensorStore a, b;
  readSafetensors((dir / "vlm_a" / "model.safetensors").string(), a);
  readSafetensors((dir / "vlm_b" / "model.safetensors").string(), b);
  for (const auto& [name, t] : a.tensors()) EXPECT_TRUE(at::equal(a.get(name), b.get(name))) << name;
  const double acc = evaluateDemoVlm(*vlm, *tok, 10, 1);
  EXPECT_GE(acc, 0.0);
  EXPECT_THROW(trainDemoVlm((dir / "vlm_c").string(), o, [](double f, const std::string&) { return f < 0.5; }), CancelledError);
  EXPECT_FALSE(fs::exists(dir / "vlm_c"));
}

TEST_F(DemoModelTest, DemoVlmScenesAnswerWhatThePixelsShow) {
  DemoVlmTasks tasks(5);
  const std::vector<std::string> colours = {"red", "green", "blue", "yellow", "cyan", "magenta"};
  const float rgb[6][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}, {0, 1, 1}, {1, 0, 1}};
  int checked = 0;
  for (int i = 0; i < 200; ++i) {
    DemoVlmExample ex = tasks.example();
    ASSERT_EQ(ex.pixels.sizes(), (std::vector<int64_t>{3, 16, 16}));
    const bool top = ex.question.find(" top ") != std::string::npos, left = ex.question.find(" left ") != std::string::npos;
    const int y = (top ? 0 : 8) + 3, x = (left ? 0 : 8) + 3;  // (3, 3) of a cell is on every shape
    const at::Tensor centre = ex.pixels.select(1, y).select(1, x);
    if (ex.answer == "none") {
      EXPECT_EQ(centre.sum().item<float>(), 0.0f) << ex.question;
    } else if (ex.question.find("colour") != std::string::npos) {
      const auto c = std::find(colours.begin(), colours.end(), ex.answer) - colours.begin();
      ASSERT_LT(c, 6) << ex.answer;
      for (int ch = 0; ch < 3; ++ch) EXPECT_EQ(centre[ch].item<float>(), rgb[c][ch]) << ex.question;
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

}  // namespace headlab

#include <unistd.h>

#include <fstream>

#include "training_util.h"

namespace headlab {

TEST(DemoCacheTest, ReusesAGoodCacheAndRetrainsACorruptOrOlderOne) {
  const auto dir = std::filesystem::temp_directory_path() / ("headlab-cache-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  int trained = 0;
  bool loadFails = false;
  auto load = [&](const std::string&) {
    if (loadFails) throw IoError("model.safetensors: truncated");
  };
  auto train = [&](const std::string& d) {
    ++trained;
    std::filesystem::create_directories(d);
    std::ofstream(std::filesystem::path(d) / "config.json") << "{}";
    std::ofstream(std::filesystem::path(d) / "training.json") << R"({"recipe": "v2"})";
  };
  const std::string folder = (dir / "demo").string();
  EXPECT_EQ(training::ensureCached(folder, "v2", load, train), folder);
  EXPECT_EQ(trained, 1) << "no cache: trained";
  training::ensureCached(folder, "v2", load, train);
  EXPECT_EQ(trained, 1) << "a good cache is reused";
  training::ensureCached(folder, "v3", load, train);
  EXPECT_EQ(trained, 2) << "an older recipe is retrained";
  loadFails = true;
  training::ensureCached(folder, "v2", load, train);
  EXPECT_EQ(trained, 3) << "a cache that does not load is retrained";
  std::ofstream(std::filesystem::path(folder) / "training.json") << "{ not json";
  loadFails = false;
  training::ensureCached(folder, "v2", load, train);
  EXPECT_EQ(trained, 4) << "a corrupt training.json is retrained";
  std::ofstream(std::filesystem::path(folder) / "training.json") << R"({"recipe": ["v2"]})";
  training::ensureCached(folder, "v2", load, train);
  EXPECT_EQ(trained, 5) << "a recipe of the wrong JSON type is retrained, not thrown";
  std::filesystem::remove_all(dir);
}

}  // namespace headlab
