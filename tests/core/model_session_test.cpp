#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <cstdlib>
#include <filesystem>

#include "headlab/core/errors.h"
#include "headlab/core/model_session.h"
#include "headlab/core/tokenizer.h"
#include "shared_path.h"

namespace headlab {

TEST(ModelSessionTest, OpensATextModelWithItsTokenizer) {
  ModelSession s = openModelSession(test::sharedPath("models/stories260k/stories260K.bin"));
  EXPECT_EQ(s.vlm, nullptr);
  EXPECT_EQ(s.loaded.format, "llama2c");
  ASSERT_NE(s.tokenizer(), nullptr);
  EXPECT_EQ(&s.model(), s.loaded.model.get());
  std::vector<int64_t> ids = s.tokenizer()->encode("Once upon a time", true);
  const std::vector<int64_t> before = ids;
  EXPECT_FALSE(s.prepare(ids).embeds.defined()) << "text models take ids, not embeddings";
  EXPECT_EQ(ids, before);
}

TEST(ModelSessionTest, OpensALlavaFolderAndSplicesTheImage) {
  const char* dir = std::getenv("HEADLAB_REFERENCE_DIR");
  ASSERT_NE(dir, nullptr) << "run through ctest (the MakeReferenceModels fixture writes the models)";
  SessionOptions o;
  ModelSession s = openModelSession(std::string(dir) + "/llava", o);
  ASSERT_NE(s.vlm, nullptr);
  EXPECT_EQ(s.loaded.format, "llava");
  EXPECT_EQ(s.loaded.model, nullptr);
  EXPECT_EQ(&s.model(), &s.vlm->language());
  const auto& vc = s.vlm->visionConfig();
  s.pixels = at::zeros({1, 3, vc.image_size, vc.image_size});
  std::vector<int64_t> ids{1, 5, 6};
  c10::InferenceMode guard;
  VlmInput in = s.prepare(ids);
  ASSERT_TRUE(in.embeds.defined());
  EXPECT_EQ(in.imageEnd - in.imageBegin, vc.imageTokens());
  EXPECT_EQ(static_cast<int64_t>(ids.size()), 3 + vc.imageTokens()) << "the placeholder became one id per image token";
}

TEST(ModelSessionTest, RefusesWithTheReason) {
  EXPECT_THROW(openModelSession(""), InputError);
  try {
    loadModel("demo");
    FAIL() << "the loader does not train demos";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("openModelSession"), std::string::npos) << e.what();
  }
  const char* dir = std::getenv("HEADLAB_REFERENCE_DIR");
  ASSERT_NE(dir, nullptr);
  const std::string noTokenizer = std::string(dir) + "/gpt2";  // config and weights only
  SessionOptions o;
  EXPECT_THROW(openModelSession(noTokenizer, o), TokenizerError);
  o.tokenizerRequired = false;
  EXPECT_EQ(openModelSession(noTokenizer, o).tokenizer(), nullptr);
}

}  // namespace headlab
