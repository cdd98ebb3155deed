// Score-ordered BPE as llama2.c and SentencePiece run it: one piece per UTF-8 character (bytes
// as <0xNN> fallback), then repeatedly merge the adjacent pair whose concatenation has the
// highest score (leftmost on ties). Used for tokenizer.bin files and GGUF "llama" vocabularies.
#include <array>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "headlab/core/errors.h"
#include "headlab/core/tensor_store.h"
#include "headlab/core/tokenizer.h"
#include "tokenizer_internal.h"

namespace headlab {

namespace {
class ScoreBpeTokenizer : public Tokenizer {
 public:
  ScoreBpeTokenizer(std::vector<std::string> pieces, std::vector<float> scores, std::vector<int> types,
                    int64_t bos, int64_t eos, std::string kind)
      : m_pieces(std::move(pieces)), m_scores(std::move(scores)), m_kind(std::move(kind)) {
    m_bos = bos, m_eos = eos;
    m_byteIds.fill(-1);
    for (size_t i = 0; i < m_pieces.size(); ++i) {
      int type = types.empty() ? 1 : types[i];
      const std::string& p = m_pieces[i];
      unsigned byte;
      if (p.size() == 6 && parseByteToken(p, 0, byte)) {
        m_byteIds[byte] = static_cast<int64_t>(i);
        continue;
      }
      if (type == 3 || type == 2) continue;  // control and unknown pieces never come from text
      m_lookup.emplace(p, static_cast<int64_t>(i));
    }
  }

  std::vector<int64_t> encode(const std::string& text, bool addBos) const override {
    std::vector<int64_t> ids;
    if (addBos && m_bos >= 0) ids.push_back(m_bos);
    if (text.empty()) return ids;
    std::vector<int64_t> toks;
    // Dummy prefix: SentencePiece's add_dummy_prefix.
    auto space = m_lookup.find(" ");
    if (space != m_lookup.end()) toks.push_back(space->second);
    for (const std::string& ch : utf8Chars(text)) {
      auto it = m_lookup.find(ch);
      if (it != m_lookup.end()) {
        toks.push_back(it->second);
        continue;
      }
      for (unsigned char b : ch) {
        if (m_byteIds[b] < 0)
          throw TokenizerError(m_kind + ": character needs byte fallback but the vocabulary has no <0x" +
                               std::to_string(b) + "> piece");
        toks.push_back(m_byteIds[b]);
      }
    }
    std::string merged;
    while (true) {
      float bestScore = -1e30f;
      int64_t bestId = -1;
      size_t bestIdx = 0;
      for (size_t i = 0; i + 1 < toks.size(); ++i) {
        merged = m_pieces[toks[i]];
        merged += m_pieces[toks[i + 1]];
        auto it = m_lookup.find(merged);
        if (it != m_lookup.end() && m_scores[it->second] > bestScore) {
          bestScore = m_scores[it->second];
          bestId = it->second;
          bestIdx = i;
        }
      }
      if (bestId < 0) break;
      toks[bestIdx] = bestId;
      toks.erase(toks.begin() + static_cast<long>(bestIdx) + 1);
    }
    ids.insert(ids.end(), toks.begin(), toks.end());
    return ids;
  }

  std::string decodeStep(int64_t prev, int64_t id) const override {
    checkId(id);
    if (id == m_bos || id == m_eos) return "";
    std::string piece = m_pieces[id];
    if (prev == m_bos && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    unsigned byte;
    if (piece.size() == 6 && parseByteToken(piece, 0, byte)) return std::string(1, static_cast<char>(byte));
    return piece;
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string out;
    int64_t prev = m_bos;  // a sequence starts as if after BOS: the dummy-prefix space is dropped
    for (int64_t id : ids) {
      out += decodeStep(prev, id);
      prev = id;
    }
    return out;
  }

  std::string tokenString(int64_t id) const override {
    checkId(id);
    if (id == m_bos || id == m_eos || id == 0) {  // llama2.c writes "\n<s>\n": show "<s>"
      const std::string& p = m_pieces[id];
      size_t b = p.find_first_not_of(" \n"), e = p.find_last_not_of(" \n");
      return b == std::string::npos ? p : p.substr(b, e - b + 1);
    }
    return m_pieces[id];
  }
  int64_t vocabSize() const override { return static_cast<int64_t>(m_pieces.size()); }
  std::string kind() const override { return m_kind; }

 private:
  void checkId(int64_t id) const {
    if (id < 0 || id >= vocabSize())
      throw TokenizerError("token id " + std::to_string(id) + " out of range [0, " + std::to_string(vocabSize()) + ")");
  }
  std::vector<std::string> m_pieces;
  std::vector<float> m_scores;
  std::unordered_map<std::string, int64_t> m_lookup;
  std::array<int64_t, 256> m_byteIds{};
  std::string m_kind;
};
}  // namespace

std::unique_ptr<Tokenizer> loadLlama2cTokenizer(const std::string& path, int64_t vocabSize) {
  MappedFile f(path);
  ByteReader r(f.data(), f.size(), path);
  int32_t maxLen = r.read<int32_t>("max_token_length");
  if (maxLen <= 0 || maxLen > 1 << 16) throw TokenizerError(path + ": max_token_length " + std::to_string(maxLen) + " is invalid");
  std::vector<std::string> pieces;
  std::vector<float> scores;
  while (r.remaining() > 0 && (vocabSize < 0 || static_cast<int64_t>(pieces.size()) < vocabSize)) {
    scores.push_back(r.read<float>("token score"));
    int32_t len = r.read<int32_t>("token length");
    if (len < 0 || len > maxLen)
      throw TokenizerError(path + ": token " + std::to_string(pieces.size()) + " has length " + std::to_string(len) +
                           " (max_token_length " + std::to_string(maxLen) + ")");
    pieces.push_back(r.readString(static_cast<uint64_t>(len), "token bytes"));
  }
  // llama2.c vocabularies hold <unk>, BOS, EOS and the 256 byte pieces before any merge: fewer
  // than 259 tokens means the file was cut short (the format stores no count to check against).
  if (pieces.size() < 259)
    throw TokenizerError(path + ": truncated vocabulary: " + std::to_string(pieces.size()) +
                         " tokens, a llama2.c tokenizer has at least 259 (3 specials + 256 bytes)");
  if (vocabSize > 0 && static_cast<int64_t>(pieces.size()) != vocabSize)
    throw TokenizerError(path + ": vocabulary has " + std::to_string(pieces.size()) + " tokens; expected " + std::to_string(vocabSize));
  // llama2.c convention: 0 <unk>, 1 BOS, 2 EOS.
  std::vector<int> types(pieces.size(), 1);
  types[0] = 2, types[1] = 3, types[2] = 3;
  return std::make_unique<ScoreBpeTokenizer>(std::move(pieces), std::move(scores), std::move(types), 1, 2, "llama2.c tokenizer.bin");
}

std::unique_ptr<Tokenizer> makeScoreBpeFromGguf(const nlohmann::json& meta, const std::string& where) {
  const auto& toks = meta.at("tokenizer.ggml.tokens");
  std::vector<std::string> pieces;
  pieces.reserve(toks.size());
  for (const auto& t : toks) {
    if (!t.is_string()) throw TokenizerError(where + ": tokenizer.ggml.tokens holds a non-string");
    pieces.push_back(replaceAll(t.get<std::string>(), "\xE2\x96\x81", " "));  // U+2581 -> space
  }
  std::vector<float> scores(pieces.size(), 0.0f);
  if (meta.contains("tokenizer.ggml.scores")) {
    const auto& s = meta["tokenizer.ggml.scores"];
    if (s.size() != pieces.size()) throw TokenizerError(where + ": tokenizer.ggml.scores has " + std::to_string(s.size()) + " entries; expected " + std::to_string(pieces.size()));
    for (size_t i = 0; i < s.size(); ++i) scores[i] = s[i].get<float>();
  }
  std::vector<int> types;
  if (meta.contains("tokenizer.ggml.token_type")) {
    for (const auto& t : meta["tokenizer.ggml.token_type"]) types.push_back(t.get<int>());
    if (types.size() != pieces.size()) throw TokenizerError(where + ": tokenizer.ggml.token_type has the wrong length");
  }
  auto id = [&](const char* key, int64_t fallback) {
    return meta.contains(key) && meta[key].is_number_integer() ? meta[key].get<int64_t>() : fallback;
  };
  return std::make_unique<ScoreBpeTokenizer>(std::move(pieces), std::move(scores), std::move(types),
                                             id("tokenizer.ggml.bos_token_id", 1), id("tokenizer.ggml.eos_token_id", 2),
                                             "GGUF llama vocabulary");
}

}  // namespace headlab
