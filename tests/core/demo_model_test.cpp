// The demo recipe: seeded and reproducible, written atomically as a loadable Hugging Face folder.
// The full training (about 90 s) runs in the DemoReport CLI test; these use a few steps.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <filesystem>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/demo_model.h"
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
