// Tokenizers for the files researchers have: llama2.c tokenizer.bin, GGUF vocabularies,
// Hugging Face tokenizer.json (byte-level BPE and SentencePiece-style BPE with byte fallback),
// SentencePiece tokenizer.model, and GPT-2's encoder.json + vocab.bpe.
// Thread: encode/decode are const and safe to call from any thread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace headlab {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Adds BOS first when addBos and the tokenizer has one. Throws TokenizerError.
  virtual std::vector<int64_t> encode(const std::string& text, bool addBos = true) const = 0;
  // Text of a whole sequence; special tokens (BOS/EOS) are skipped.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  // Text one token adds when printed after `prev`, as llama2.c streams it.
  virtual std::string decodeStep(int64_t prev, int64_t id) const { (void)prev; return decode({id}); }
  // Human-readable piece for a token chip or an axis label (spaces shown as spaces).
  virtual std::string tokenString(int64_t id) const = 0;
  virtual int64_t vocabSize() const = 0;
  virtual std::string kind() const = 0;
  int64_t bos() const { return m_bos; }
  int64_t eos() const { return m_eos; }
  // The id words outside the vocabulary become (-1: none; byte-level and byte-fallback tokenizers
  // spell every text).
  int64_t unk() const { return m_unk; }
  // Whether encode(text, true) prepends BOS (false for GPT-2, Llama 3 and Qwen files).
  bool addsBos() const { return m_addsBos && m_bos >= 0; }

 protected:
  int64_t m_bos = -1;
  int64_t m_eos = -1;
  int64_t m_unk = -1;
  bool m_addsBos = true;
};

// By file: *.bin (llama2.c), *.model (SentencePiece), *.json (tokenizer.json), *.gguf (vocab),
// a folder (tokenizer.json, tokenizer.model or encoder.json + vocab.bpe). Throws IoError/TokenizerError.
std::unique_ptr<Tokenizer> loadTokenizer(const std::string& path);
std::unique_ptr<Tokenizer> loadLlama2cTokenizer(const std::string& path, int64_t vocabSize = -1);
std::unique_ptr<Tokenizer> loadHfTokenizerJson(const std::string& path);
std::unique_ptr<Tokenizer> loadGpt2Vocab(const std::string& encoderJson, const std::string& vocabBpe);
std::unique_ptr<Tokenizer> loadSentencePieceModel(const std::string& path);
std::unique_ptr<Tokenizer> tokenizerFromGguf(const nlohmann::json& metadata, const std::string& where);

// The id of a single token given as text: the piece exactly as tokenString shows it (" girl"),
// else text that encodes (without BOS) to exactly one token, else "#<id>". Throws InputError.
int64_t resolveSingleToken(const Tokenizer& tok, const std::string& text);

// UTF-8 helpers shared by the tokenizers.
std::vector<std::string> utf8Chars(const std::string& s);  // invalid bytes become one-byte pieces
bool isValidUtf8(const std::string& s);

}  // namespace headlab
