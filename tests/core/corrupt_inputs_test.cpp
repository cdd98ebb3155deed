// Broken files give one clear error naming the file and what was wrong; none crashes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/vision_language.h"
#include "headlab/core/model_loader.h"
#include "shared_path.h"

namespace headlab {

namespace fs = std::filesystem;
using test::sharedPath;

class CorruptInputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("headlab_corrupt_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string bytesOf(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  std::string write(const std::string& name, const std::string& bytes) {
    std::ofstream out(dir / name, std::ios::binary);
    out << bytes;
    return (dir / name).string();
  }
  // Copies the HF stories folder with one file replaced.
  std::string hfWith(const std::string& file, const std::string& bytes) {
    fs::path d = dir / "hf";
    fs::create_directories(d);
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(sharedPath(std::string("models/stories260k-hf/") + f), d / f, fs::copy_options::overwrite_existing);
    std::ofstream(d / file, std::ios::binary | std::ios::trunc) << bytes;
    return d.string();
  }
  template <typename E>
  std::string errorOf(const std::function<void()>& f) {
    try {
      f();
    } catch (const E& e) {
      return e.what();
    } catch (const std::exception& e) {
      return std::string("wrong exception type: ") + e.what();
    }
    return "no error";
  }
  fs::path dir;
};

TEST_F(CorruptInputsTest, TruncatedLlama2cCheckpoint) {
  std::string b = bytesOf(sharedPath("models/stories260k/stories260K.bin"));
  std::string p = write("trunc.bin", b.substr(0, b.size() / 2));
  std::string msg = errorOf<IoError>([&] { loadModel(p); });
  EXPECT_NE(msg.find("trunc.bin: truncated llama2.c checkpoint"), std::string::npos) << msg;
}

TEST_F(CorruptInputsTest, TruncatedGguf) {
  std::string b = bytesOf(sharedPath("models/stories260k/stories260K.gguf"));
  for (size_t cut : {size_t(3), size_t(20), size_t(5000), b.size() - 100}) {
    std::string p = write("t.gguf", b.substr(0, cut));
    std::string msg = errorOf<IoError>([&] { loadModel(p); });
    EXPECT_NE(msg.find("t.gguf"), std::string::npos) << cut << ": " << msg;
  }
}

TEST_F(CorruptInputsTest, SafetensorsHeaderLengthBeyondFile) {
  std::string b = bytesOf(sharedPath("models/stories260k-hf/model.safetensors"));
  uint64_t huge = 1ull << 40;
  std::memcpy(b.data(), &huge, 8);
  std::string msg = errorOf<IoError>([&] { loadModel(hfWith("model.safetensors", b)); });
  EXPECT_NE(msg.find("header length 1099511627776 exceeds file size"), std::string::npos) << msg;
}

TEST_F(CorruptInputsTest, SafetensorsWrongShapeUnknownDtypeAndMissingTensor) {
  auto make = [&](const std::string& header) {
    std::string h = header;
    uint64_t n = h.size();
    return std::string(reinterpret_cast<char*>(&n), 8) + h + std::string(16, '\0');
  };
  std::string cfg = R"({"model_type":"llama","hidden_size":4,"intermediate_size":4,"num_hidden_layers":1,
    "num_attention_heads":1,"vocab_size":4,"tie_word_embeddings":true})";
  std::string d = hfWith("config.json", cfg);
  std::ofstream(fs::path(d) / "model.safetensors", std::ios::binary | std::ios::trunc)
      << make(R"({"model.embed_tokens.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})");
  std::string msg = errorOf<WeightError>([&] { loadModel(d); });
  EXPECT_NE(msg.find("tensor 'model.embed_tokens.weight' has wrong shape; expected [4, 4], got [2, 2]"), std::string::npos) << msg;

  std::ofstream(fs::path(d) / "model.safetensors", std::ios::binary | std::ios::trunc)
      << make(R"({"model.embed_tokens.weight":{"dtype":"F8_E4M3","shape":[4,4],"data_offsets":[0,16]}})");
  msg = errorOf<WeightError>([&] { loadModel(d); });
  EXPECT_NE(msg.find("unsupported dtype 'F8_E4M3'"), std::string::npos) << msg;

  std::ofstream(fs::path(d) / "model.safetensors", std::ios::binary | std::ios::trunc)
      << make(R"({"model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})");
  msg = errorOf<WeightError>([&] { loadModel(d); });
  EXPECT_NE(msg.find("missing tensor 'model.embed_tokens.weight'"), std::string::npos) << msg;
}

TEST_F(CorruptInputsTest, BadConfigJson) {
  std::string msg = errorOf<ConfigError>([&] { loadModel(hfWith("config.json", "{\"model_type\": \"llama\",")); });
  EXPECT_NE(msg.find("config.json: bad JSON"), std::string::npos) << msg;
  msg = errorOf<ConfigError>([&] { loadModel(hfWith("config.json", R"({"model_type":"llama","hidden_size":64})")); });
  EXPECT_NE(msg.find("missing key 'intermediate_size'"), std::string::npos) << msg;
}

// Found by the config.json fuzzer: a model_type that is not a string made isLlavaFolder throw
// nlohmann's type_error (a foreign exception) instead of answering "no".
TEST_F(CorruptInputsTest, ModelTypeOfTheWrongJsonType) {
  const std::string folder = hfWith("config.json", R"({"model_type": ["LlamaForCausalLM"], "hidden_size": 64})");
  EXPECT_FALSE(isLlavaFolder(folder));
  std::string msg = errorOf<ConfigError>([&] { loadModel(folder); });
  EXPECT_NE(msg.find("model_type"), std::string::npos) << msg;
  msg = errorOf<ConfigError>([&] { loadLlava(folder); });
  EXPECT_NE(msg.find("model_type is not 'llava'"), std::string::npos) << msg;
}

TEST_F(CorruptInputsTest, BadTokenizerJson) {
  std::string msg = errorOf<ConfigError>([&] { loadTokenizer(write("tokenizer.json", "{\"model\": [")); });
  EXPECT_NE(msg.find("tokenizer.json: bad JSON"), std::string::npos) << msg;
}

TEST_F(CorruptInputsTest, MissingFile) {
  std::string msg = errorOf<IoError>([&] { loadModel((dir / "nope.bin").string()); });
  EXPECT_NE(msg.find("nope.bin"), std::string::npos) << msg;
}

}  // namespace headlab
