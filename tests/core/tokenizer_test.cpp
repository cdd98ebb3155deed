#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/tokenizer.h"
#include "shared_path.h"

namespace headlab {

using test::sharedPath;

namespace {
nlohmann::json golden(const std::string& name) { return readJsonFile(sharedPath("testdata/" + name)); }
std::vector<int64_t> ids(const nlohmann::json& j) { return j["token_ids"].get<std::vector<int64_t>>(); }
}  // namespace

TEST(TokenizerTest, Gpt2EncoderJsonReproducesPublishedIds) {
  auto tok = loadGpt2Vocab(sharedPath("models/gpt2-tokenizer/encoder.json"), sharedPath("models/gpt2-tokenizer/vocab.bpe"));
  auto g = golden("swift-gpt2_encoded_tokens.json");
  EXPECT_EQ(tok->encode(g["text"], false), ids(g));
  EXPECT_EQ(tok->decode(ids(g)), g["decoded_text"].get<std::string>());
  EXPECT_EQ(tok->encode("Hello world", false), (std::vector<int64_t>{15496, 995}));
}

TEST(TokenizerTest, Gpt2GgufVocabularyMatchesEncoderJson) {
  auto tok = loadTokenizer(sharedPath("models/gpt2-tokenizer/ggml-vocab-gpt-2.gguf"));
  auto g = golden("swift-gpt2_encoded_tokens.json");
  EXPECT_EQ(tok->encode(g["text"], false), ids(g));
}

TEST(TokenizerTest, Llama2SentencePieceModelReproducesPublishedIds) {
  auto tok = loadSentencePieceModel(sharedPath("models/llama2-tokenizer/tokenizer.model"));
  auto g = golden("swift-llama_encoded.json");
  EXPECT_EQ(tok->encode(g["text"], true), ids(g));
  EXPECT_EQ(tok->decode(ids(g)), g["text"].get<std::string>());
}

TEST(TokenizerTest, Llama2TokenizerBinReproducesPublishedIds) {
  auto tok = loadTokenizer(sharedPath("models/llama2-tokenizer/tokenizer.bin"));
  auto g = golden("swift-llama_encoded.json");
  EXPECT_EQ(tok->encode(g["text"], true), ids(g));
  EXPECT_EQ(tok->decode(ids(g)), g["text"].get<std::string>());
}

TEST(TokenizerTest, Llama2GgufVocabularyReproducesPublishedIds) {
  auto tok = loadTokenizer(sharedPath("models/llama2-tokenizer/ggml-vocab-llama-spm.gguf"));
  auto g = golden("swift-llama_encoded.json");
  EXPECT_EQ(tok->encode(g["text"], true), ids(g));
}

TEST(TokenizerTest, Llama3TokenizerJsonReproducesPublishedIds) {
  auto tok = loadTokenizer(sharedPath("models/llama3-tokenizer/tokenizer.json"));
  auto g = golden("swift-llama_3.2_encoded.json");
  std::vector<int64_t> got{128000};  // this file has no post-processor: callers add BOS
  for (auto id : tok->encode(g["text"], false)) got.push_back(id);
  EXPECT_EQ(got, ids(g));
  EXPECT_EQ(tok->decode(ids(g)), g["text"].get<std::string>());
}

// Llama 3.x's tokenizer.json adds BOS through post_processor = Sequence[ByteLevel, TemplateProcessing];
// a top-level-only reader dropped it, and every first-token probe measured the wrong token.
TEST(TokenizerTest, Llama3SequencePostProcessorAddsBos) {
  nlohmann::json j = readJsonFile(sharedPath("models/llama3-tokenizer/tokenizer.json"));
  j["post_processor"] = nlohmann::json::parse(R"({"type": "Sequence", "processors": [
      {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
      {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                               {"Sequence": {"id": "A", "type_id": 0}}]}]})");
  // One folder per process: ctest runs this test alone and inside FidelityOfProbesAndTokenizers, at once.
  const auto dir = std::filesystem::temp_directory_path() / ("headlab_llama32_tokenizer_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream((dir / "tokenizer.json").string()) << j.dump();
  std::filesystem::remove(dir / "tokenizer_config.json");
  auto tok = loadTokenizer((dir / "tokenizer.json").string());
  auto g = golden("swift-llama_3.2_encoded.json");
  EXPECT_EQ(tok->bos(), 128000);
  EXPECT_EQ(tok->encode(g["text"], true), ids(g));
  // add_bos_token in tokenizer_config.json decides when it is given (LlamaTokenizerFast's rule).
  std::ofstream((dir / "tokenizer_config.json").string()) << R"({"add_bos_token": false, "bos_token": "<|begin_of_text|>"})";
  EXPECT_NE(loadTokenizer((dir / "tokenizer.json").string())->encode("Hello", true).front(), 128000);
  // The original Llama 3 file (ByteLevel only) with add_bos_token true takes its bos_token.
  j["post_processor"] = {{"type", "ByteLevel"}};
  std::ofstream((dir / "tokenizer.json").string()) << j.dump();
  std::ofstream((dir / "tokenizer_config.json").string()) << R"({"add_bos_token": true, "bos_token": {"content": "<|begin_of_text|>"}})";
  EXPECT_EQ(loadTokenizer((dir / "tokenizer.json").string())->encode("Hello", true).front(), 128000);
  std::filesystem::remove_all(dir);
}

TEST(TokenizerTest, Qwen3TokenizerJsonRoundTrips) {
  auto tok = loadTokenizer(sharedPath("models/qwen3-tokenizer/tokenizer.json"));
  for (std::string text : {"Hello world", "The quick brown fox, 12345 times!\n  indented", "déjà vu — 東京 🙂",
                           "<|im_start|>user\nhi<|im_end|>"}) {
    auto ids = tok->encode(text, false);
    EXPECT_FALSE(ids.empty());
    std::string back;
    for (auto id : ids) back += tok->tokenString(id);
    EXPECT_EQ(back, text) << "pieces of '" << text << "'";
  }
  auto chat = tok->encode("<|im_start|>user", false);
  EXPECT_EQ(chat.size(), 2u) << "added tokens are matched before BPE";
}

TEST(TokenizerTest, Stories260kTokenizersAgree) {
  auto bin = loadTokenizer(sharedPath("models/stories260k/tok512.bin"));
  auto gguf = loadTokenizer(sharedPath("models/stories260k/stories260K.gguf"));
  auto hf = loadTokenizer(sharedPath("models/stories260k-hf/tokenizer.json"));
  for (std::string text : {"Once upon a time", "I believe the meaning of life is", "Lily saw a big, red ball!", "naïve café"}) {
    auto a = bin->encode(text, true);
    EXPECT_EQ(gguf->encode(text, true), a) << text;
    EXPECT_EQ(hf->encode(text, true), a) << text;
    EXPECT_EQ(bin->decode(a), text);
    EXPECT_EQ(hf->decode(a), text);
  }
}

TEST(TokenizerTest, GgufPromptTokenCountsMatchLlamaCpp) {
  auto tok = loadTokenizer(sharedPath("models/stories260k/stories260K.gguf"));
  auto ref = golden("stories260k-reference.json")["stories260k_prompt_token_counts"]["cases"];
  ASSERT_EQ(ref.size(), 2u);
  for (const auto& c : ref)
    EXPECT_EQ(static_cast<int64_t>(tok->encode(c["prompt"], true).size()), c["n_prompt_tokens_incl_bos"].get<int64_t>())
        << c["prompt"];
}

}  // namespace headlab

namespace headlab {

// Found by fuzz_llama2c_tokenizer: sscanf accepted "<0x-D>" as byte 4294967283 and indexed past the
// byte table. Such a piece is now an ordinary piece.
TEST(TokenizerTest, APieceThatOnlyLooksLikeAByteIsAnOrdinaryPiece) {
  auto dir = std::filesystem::temp_directory_path() / ("headlab_tok_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ifstream in(test::sharedPath("models/stories260k/tok512.bin"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Replace the piece of token 3 ("<0x00>", 6 bytes) with "<0x-D>".
  const size_t at = bytes.find("<0x00>");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 6, "<0x-D>");
  std::ofstream(dir / "tok.bin", std::ios::binary) << bytes;
  auto tok = loadTokenizer((dir / "tok.bin").string());
  EXPECT_EQ(tok->tokenString(3), "<0x-D>");
  EXPECT_FALSE(tok->encode("Once upon a time", true).empty());
  std::filesystem::remove_all(dir);
}

}  // namespace headlab
