// Rank-ordered BPE as Hugging Face tokenizers runs it: byte-level (GPT-2, Llama 3, Qwen) with a
// regex pre-split, or SentencePiece-style (normalise spaces to U+2581, byte fallback).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <set>
#include <fstream>
#include <map>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/tokenizer.h"
#include "tokenizer_internal.h"

namespace headlab {

const char* const kGpt2SplitRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3SplitRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";


namespace {
const std::string kSpaceMark = "\xE2\x96\x81";  // U+2581

// Real vocabularies number their tokens 0..n-1; a far larger id would make us allocate for tokens
// that do not exist (a file of a few bytes must not cost gigabytes).
void requireDense(int64_t maxId, size_t count, const std::string& kind) {
  if (maxId >= static_cast<int64_t>(2 * count + 1024))
    throw TokenizerError(kind + ": token ids are sparse: largest id " + std::to_string(maxId) + " for " + std::to_string(count) + " tokens");
  if (count == 0) throw TokenizerError(kind + ": empty vocabulary");
}

std::string codepointToUtf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's reversible byte <-> printable-unicode table.
struct ByteUnicode {
  std::array<std::string, 256> toUnicode;
  std::unordered_map<std::string, uint8_t> toByte;
  ByteUnicode() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      toUnicode[b] = codepointToUtf8(cp);
      toByte[toUnicode[b]] = static_cast<uint8_t>(b);
    }
  }
};
const ByteUnicode& byteUnicode() {
  static const ByteUnicode table;
  return table;
}

class Regex {
 public:
  explicit Regex(const std::string& pattern) {
    int err;
    PCRE2_SIZE off;
    m_code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                           PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
    if (!m_code) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(err, buf, sizeof buf);
      throw TokenizerError("pre-tokenizer regex does not compile at " + std::to_string(off) + ": " + reinterpret_cast<char*>(buf));
    }
    pcre2_jit_compile(m_code, PCRE2_JIT_COMPLETE);
  }
  ~Regex() { pcre2_code_free(m_code); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Splits `text` into matches and the gaps between them ("Isolated" behaviour).
  std::vector<std::string> split(const std::string& text) const {
    std::vector<std::string> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(m_code, nullptr);
    size_t pos = 0, last = 0;
    while (pos <= text.size()) {
      int rc = pcre2_match(m_code, reinterpret_cast<PCRE2_SPTR>(text.c_str()), text.size(), pos, 0, md, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t b = ov[0], e = ov[1];
      if (b > last) out.push_back(text.substr(last, b - last));
      if (e > b) out.push_back(text.substr(b, e - b));
      last = e;
      if (e == b) {  // empty match: step over one UTF-8 character
        size_t step = 1;
        while (b + step < text.size() && (static_cast<unsigned char>(text[b + step]) & 0xC0) == 0x80) ++step;
        pos = b + step;
      } else {
        pos = e;
      }
      if (pos >= text.size()) break;
    }
    if (last < text.size()) out.push_back(text.substr(last));
    pcre2_match_data_free(md);
    return out;
  }

 private:
  pcre2_code* m_code = nullptr;
};

struct PairHash {
  size_t operator()(const std::pair<std::string, std::string>& p) const {
    return std::hash<std::string>()(p.first) * 31 + std::hash<std::string>()(p.second);
  }
};

struct BpeSpec {
  std::unordered_map<std::string, int64_t> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  bool byteLevel = false;
  std::string splitRegex;          // byte-level pre-split; empty = whole text
  bool spaceToMark = false;        // SentencePiece style: ' ' -> U+2581, prepend U+2581
  bool byteFallback = false;
  bool ignoreMerges = false;
  bool stripLeadingSpace = false;  // decoder Strip(1) after the prepended mark
  int64_t unk = -1, bos = -1, eos = -1;
  bool addBos = false;
  std::vector<std::pair<std::string, int64_t>> added;  // special / added tokens, matched first
  std::string kind;
};

class BpeTokenizer : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeSpec spec) : m_spec(std::move(spec)) {
    m_bos = m_spec.bos, m_eos = m_spec.eos, m_unk = m_spec.unk, m_addsBos = m_spec.addBos;
    int64_t maxId = -1;
    for (auto& [s, id] : m_spec.vocab) maxId = std::max(maxId, id);
    for (auto& [s, id] : m_spec.added) maxId = std::max(maxId, id);
    requireDense(maxId, m_spec.vocab.size() + m_spec.added.size(), m_spec.kind);
    m_pieces.resize(maxId + 1);
    for (auto& [s, id] : m_spec.vocab) m_pieces[id] = s;
    for (auto& [s, id] : m_spec.added) {
      m_pieces[id] = s;
      m_special.insert(id);
    }
    for (size_t i = 0; i < m_spec.merges.size(); ++i) m_ranks.emplace(m_spec.merges[i], static_cast<int>(i));
    if (!m_spec.splitRegex.empty()) m_regex = std::make_unique<Regex>(m_spec.splitRegex);
    // Longest added token first so "<|end|>" wins over "<|e".
    std::sort(m_spec.added.begin(), m_spec.added.end(), [](auto& a, auto& b) { return a.first.size() > b.first.size(); });
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      auto it = m_spec.vocab.find(name);
      m_byteIds[b] = it == m_spec.vocab.end() ? -1 : it->second;
    }
  }

  std::vector<int64_t> encode(const std::string& text, bool addBos) const override {
    std::vector<int64_t> ids;
    if (addBos && m_spec.addBos && m_bos >= 0) ids.push_back(m_bos);
    size_t pos = 0;
    bool first = true;
    while (pos < text.size()) {
      size_t bestAt = std::string::npos;
      const std::pair<std::string, int64_t>* best = nullptr;
      for (const auto& a : m_spec.added) {
        size_t at = text.find(a.first, pos);
        if (at != std::string::npos && (at < bestAt)) bestAt = at, best = &a;
      }
      size_t end = best ? bestAt : text.size();
      if (end > pos) encodeSegment(text.substr(pos, end - pos), first, ids);
      first = false;
      if (!best) break;
      ids.push_back(best->second);
      pos = bestAt + best->first.size();
    }
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string joined;
    for (int64_t id : ids) {
      checkId(id);
      if (m_special.count(id)) continue;
      joined += m_pieces[id];
    }
    return finishDecode(joined, true);
  }

  std::string decodeStep(int64_t prev, int64_t id) const override {
    checkId(id);
    if (m_special.count(id)) return "";
    return finishDecode(m_pieces[id], prev < 0 || prev == m_bos);
  }

  std::string tokenString(int64_t id) const override {
    checkId(id);
    if (m_special.count(id)) return m_pieces[id];
    return finishDecode(m_pieces[id], false);
  }
  int64_t vocabSize() const override { return static_cast<int64_t>(m_pieces.size()); }
  std::string kind() const override { return m_spec.kind; }

 private:
  void checkId(int64_t id) const {
    if (id < 0 || id >= vocabSize())
      throw TokenizerError("token id " + std::to_string(id) + " out of range [0, " + std::to_string(vocabSize()) + ")");
  }

  std::string finishDecode(const std::string& joined, bool atStart) const {
    if (m_spec.byteLevel) {
      const auto& bu = byteUnicode();
      std::string out;
      for (const std::string& ch : utf8Chars(joined)) {
        auto it = bu.toByte.find(ch);
        out += it != bu.toByte.end() ? std::string(1, static_cast<char>(it->second)) : ch;
      }
      return out;
    }
    // SentencePiece style: <0xNN> pieces are bytes, U+2581 is a space.
    std::string out;
    size_t i = 0;
    while (i < joined.size()) {
      unsigned byte;
      if (parseByteToken(joined, i, byte)) {
        out += static_cast<char>(byte);
        i += 6;
      } else {
        out += joined[i++];
      }
    }
    out = replaceAll(out, kSpaceMark, " ");
    if (atStart && m_spec.stripLeadingSpace && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

  void encodeSegment(const std::string& segment, bool atTextStart, std::vector<int64_t>& ids) const {
    if (m_spec.byteLevel) {
      const auto& bu = byteUnicode();
      std::vector<std::string> words = m_regex ? m_regex->split(segment) : std::vector<std::string>{segment};
      for (const auto& w : words) {
        std::string mapped;
        for (unsigned char c : w) mapped += bu.toUnicode[c];
        bpeWord(mapped, ids);
      }
      return;
    }
    std::string s = segment;
    if (m_spec.spaceToMark) {
      s = replaceAll(s, " ", kSpaceMark);
      if (atTextStart) s = kSpaceMark + s;
    }
    bpeWord(s, ids);
  }

  void bpeWord(const std::string& word, std::vector<int64_t>& ids) const {
    if (m_spec.ignoreMerges) {
      auto it = m_spec.vocab.find(word);
      if (it != m_spec.vocab.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    std::vector<std::string> sym = utf8Chars(word);
    while (sym.size() > 1) {
      int bestRank = INT32_MAX;
      size_t bestIdx = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto it = m_ranks.find({sym[i], sym[i + 1]});
        if (it != m_ranks.end() && it->second < bestRank) bestRank = it->second, bestIdx = i;
      }
      if (bestRank == INT32_MAX) break;
      sym[bestIdx] += sym[bestIdx + 1];
      sym.erase(sym.begin() + static_cast<long>(bestIdx) + 1);
    }
    for (const auto& s : sym) {
      auto it = m_spec.vocab.find(s);
      if (it != m_spec.vocab.end()) {
        ids.push_back(it->second);
      } else if (m_spec.byteFallback) {
        for (unsigned char b : s) {
          if (m_byteIds[b] < 0) throw TokenizerError(m_spec.kind + ": no <0x..> piece for byte fallback");
          ids.push_back(m_byteIds[b]);
        }
      } else if (m_spec.unk >= 0) {
        ids.push_back(m_spec.unk);
      } else {
        throw TokenizerError(m_spec.kind + ": piece '" + s + "' is not in the vocabulary and there is no unknown token");
      }
    }
  }

  BpeSpec m_spec;
  std::vector<std::string> m_pieces;
  std::set<int64_t> m_special;
  std::unordered_map<std::pair<std::string, std::string>, int, PairHash> m_ranks;
  std::unique_ptr<Regex> m_regex;
  std::array<int64_t, 256> m_byteIds{};
};

std::pair<std::string, std::string> parseMerge(const nlohmann::json& m, const std::string& where) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    size_t sp = s.find(' ', 1);
    if (sp == std::string::npos) throw TokenizerError(where + ": merge '" + s + "' has no space");
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) return {m[0].get<std::string>(), m[1].get<std::string>()};
  throw TokenizerError(where + ": a merge must be \"a b\" or [\"a\", \"b\"]");
}

// Finds the Split regex and ByteLevel settings in a (possibly nested) pre_tokenizer.
void readPreTokenizer(const nlohmann::json& pt, BpeSpec& spec) {
  if (!pt.is_object()) return;
  std::string type = pt.value("type", "");
  if (type == "Sequence") {
    for (const auto& p : pt.value("pretokenizers", nlohmann::json::array())) readPreTokenizer(p, spec);
  } else if (type == "Split" && pt.contains("pattern") && pt["pattern"].contains("Regex")) {
    spec.splitRegex = pt["pattern"]["Regex"].get<std::string>();
  } else if (type == "ByteLevel") {
    spec.byteLevel = true;
    if (pt.value("use_regex", true) && spec.splitRegex.empty()) spec.splitRegex = kGpt2SplitRegex;
  } else if (type == "Metaspace") {
    spec.spaceToMark = true;
    spec.stripLeadingSpace = true;
  }
}
}  // namespace

namespace {
// Hugging Face WordLevel: whitespace-separated words, one id each (HeadLab's demo vocabulary).
class WordLevelTokenizer : public Tokenizer {
 public:
  WordLevelTokenizer(std::unordered_map<std::string, int64_t> vocab, int64_t unk, int64_t bos, int64_t eos)
      : m_vocab(std::move(vocab)) {
    m_bos = bos, m_eos = eos, m_unk = unk;
    int64_t maxId = -1;
    for (auto& [w, id] : m_vocab) maxId = std::max(maxId, id);
    requireDense(maxId, m_vocab.size(), "tokenizer.json WordLevel");
    m_words.resize(static_cast<size_t>(maxId + 1));
    for (auto& [w, id] : m_vocab) m_words[id] = w;
  }
  std::vector<int64_t> encode(const std::string& text, bool addBos) const override {
    std::vector<int64_t> ids;
    if (addBos && m_bos >= 0) ids.push_back(m_bos);
    size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
      size_t j = i;
      while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
      if (j > i) {
        auto it = m_vocab.find(text.substr(i, j - i));
        if (it != m_vocab.end()) ids.push_back(it->second);
        else if (m_unk >= 0) ids.push_back(m_unk);
        else throw TokenizerError("word '" + text.substr(i, j - i) + "' is not in the vocabulary");
      }
      i = j;
    }
    return ids;
  }
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string out;
    for (int64_t id : ids) {
      check(id);
      if (id == m_bos || id == m_eos) continue;
      out += (out.empty() ? "" : " ") + m_words[id];
    }
    return out;
  }
  std::string decodeStep(int64_t prev, int64_t id) const override {
    check(id);
    if (id == m_bos || id == m_eos) return "";
    return (prev < 0 || prev == m_bos ? "" : " ") + m_words[id];
  }
  std::string tokenString(int64_t id) const override {
    check(id);
    return m_words[id];
  }
  int64_t vocabSize() const override { return static_cast<int64_t>(m_words.size()); }
  std::string kind() const override { return "tokenizer.json WordLevel"; }

 private:
  void check(int64_t id) const {
    if (id < 0 || id >= vocabSize()) throw TokenizerError("token id " + std::to_string(id) + " out of range [0, " + std::to_string(vocabSize()) + ")");
  }
  std::unordered_map<std::string, int64_t> m_vocab;
  std::vector<std::string> m_words;
};
}  // namespace

namespace {
// The SpecialToken that starts a TemplateProcessing's "single" template, looked for at the top level
// and inside Sequence post-processors; "" when there is none.
std::string leadingSpecialToken(const nlohmann::json& pp) {
  if (!pp.is_object()) return "";
  if (pp.value("type", "") == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const auto& inner : pp["processors"])
      if (std::string name = leadingSpecialToken(inner); !name.empty()) return name;
    return "";
  }
  if (pp.value("type", "") != "TemplateProcessing" || !pp.contains("single") || !pp["single"].is_array() || pp["single"].empty())
    return "";
  const auto& first = pp["single"][0];
  if (!first.is_object() || !first.contains("SpecialToken") || !first["SpecialToken"].is_object()) return "";
  const auto& id = first["SpecialToken"].value("id", nlohmann::json());
  return id.is_string() ? id.get<std::string>() : "";
}

// tokenizer_config.json beside tokenizer.json: an explicit add_bos_token decides whether BOS is
// added (as LlamaTokenizerFast does), with its bos_token when the template named none.
void applyTokenizerConfig(const std::string& tokenizerJson, BpeSpec& spec) {
  const std::string cfgPath = (std::filesystem::path(tokenizerJson).parent_path() / "tokenizer_config.json").string();
  if (!std::filesystem::exists(cfgPath)) return;
  nlohmann::json cfg;
  try {
    cfg = readJsonFile(cfgPath);
  } catch (const std::exception&) {
    return;  // a broken tokenizer_config.json changes nothing that tokenizer.json said
  }
  if (!cfg.is_object() || !cfg.contains("add_bos_token") || !cfg["add_bos_token"].is_boolean()) return;
  spec.addBos = cfg["add_bos_token"].get<bool>();
  if (!spec.addBos || spec.bos >= 0) return;
  const auto& b = cfg.value("bos_token", nlohmann::json());
  const std::string name = b.is_string() ? b.get<std::string>() : b.is_object() && b.value("content", nlohmann::json()).is_string() ? b["content"].get<std::string>() : "";
  for (auto& [content, id] : spec.added)
    if (!name.empty() && content == name) spec.bos = id;
  if (spec.bos < 0) spec.addBos = false;  // nothing to add
}
}  // namespace

std::unique_ptr<Tokenizer> loadHfTokenizerJson(const std::string& path) {
  nlohmann::json j = readJsonFile(path);
  try {
    const auto& model = j.at("model");
    std::string type = model.value("type", "BPE");
    if (type == "WordLevel") {
      std::unordered_map<std::string, int64_t> vocab;
      for (auto& [w, id] : model.at("vocab").items()) vocab.emplace(w, checkedTokenId(id, w, path));
      auto find = [&](const std::string& w) {
        auto it = vocab.find(w);
        return it == vocab.end() ? int64_t(-1) : it->second;
      };
      int64_t unk = model.contains("unk_token") && model["unk_token"].is_string() ? find(model["unk_token"]) : -1;
      // BOS: the TemplateProcessing's leading SpecialToken when there is one, else "<bos>".
      int64_t bos = find("<bos>");
      if (std::string name = leadingSpecialToken(j.value("post_processor", nlohmann::json())); !name.empty()) bos = find(name);
      return std::make_unique<WordLevelTokenizer>(std::move(vocab), unk, bos, find("<eos>"));
    }
    if (type != "BPE") throw TokenizerError(path + ": model.type '" + type + "' unsupported (expected BPE)");
    BpeSpec spec;
    spec.kind = "tokenizer.json BPE";
    for (auto& [tok, id] : model.at("vocab").items()) spec.vocab.emplace(tok, checkedTokenId(id, tok, path));
    for (const auto& m : model.at("merges")) spec.merges.push_back(parseMerge(m, path));
    spec.byteFallback = model.value("byte_fallback", false);
    spec.ignoreMerges = model.value("ignore_merges", false);
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      auto it = spec.vocab.find(model["unk_token"].get<std::string>());
      if (it != spec.vocab.end()) spec.unk = it->second;
    }
    readPreTokenizer(j.value("pre_tokenizer", nlohmann::json()), spec);
    if (j.contains("decoder") && j["decoder"].is_object() && j["decoder"].value("type", "") == "ByteLevel") spec.byteLevel = true;
    // SentencePiece-style normaliser: Prepend(U+2581) + Replace(' ', U+2581).
    std::string norm = j.contains("normalizer") && j["normalizer"].is_object() ? j["normalizer"].dump() : "";
    if (norm.find("Prepend") != std::string::npos || norm.find(kSpaceMark) != std::string::npos) {
      spec.spaceToMark = true;
      spec.stripLeadingSpace = true;
    }
    for (const auto& a : j.value("added_tokens", nlohmann::json::array()))
      spec.added.emplace_back(a.at("content").get<std::string>(), checkedTokenId(a.at("id"), a.at("content").get<std::string>(), path));
    // BOS from TemplateProcessing (top-level, or inside a Sequence as Llama 3's ByteLevel +
    // TemplateProcessing): a SpecialToken before the sequence.
    const std::string templateBos = leadingSpecialToken(j.value("post_processor", nlohmann::json()));
    for (auto& [content, id] : spec.added)
      if (!templateBos.empty() && content == templateBos) spec.bos = id, spec.addBos = true;
    applyTokenizerConfig(path, spec);
    for (auto& [content, id] : spec.added) {
      if (spec.bos < 0 && (content == "<s>" || content == "<|begin_of_text|>")) spec.bos = id;
      if (spec.eos < 0 && (content == "</s>" || content == "<|end_of_text|>" || content == "<|endoftext|>")) spec.eos = id;
    }
    return std::make_unique<BpeTokenizer>(std::move(spec));
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(path + ": malformed tokenizer.json: " + e.what());
  }
}

std::unique_ptr<Tokenizer> loadGpt2Vocab(const std::string& encoderJson, const std::string& vocabBpe) {
  nlohmann::json enc = readJsonFile(encoderJson);
  if (!enc.is_object()) throw TokenizerError(encoderJson + ": expected a JSON object of token -> id");
  BpeSpec spec;
  spec.kind = "GPT-2 encoder.json + vocab.bpe";
  spec.byteLevel = true;
  spec.splitRegex = kGpt2SplitRegex;
  for (auto& [tok, id] : enc.items()) spec.vocab.emplace(tok, checkedTokenId(id, tok, encoderJson));
  std::ifstream in(vocabBpe);
  if (!in) throw IoError(vocabBpe + ": cannot open");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("#version", 0) == 0 || line.empty()) continue;
    spec.merges.push_back(parseMerge(line, vocabBpe));
  }
  auto eot = spec.vocab.find("<|endoftext|>");
  if (eot != spec.vocab.end()) spec.eos = spec.bos = eot->second, spec.added.emplace_back(eot->first, eot->second);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

std::unique_ptr<Tokenizer> makeBpeFromGguf(const nlohmann::json& meta, const std::string& where) {
  BpeSpec spec;
  spec.kind = "GGUF gpt2 vocabulary";
  spec.byteLevel = true;
  std::string pre = meta.value("tokenizer.ggml.pre", "gpt2");
  spec.splitRegex = pre == "llama-bpe" || pre == "llama3" ? kLlama3SplitRegex : kGpt2SplitRegex;
  const auto& toks = meta.at("tokenizer.ggml.tokens");
  std::vector<int> types;
  if (meta.contains("tokenizer.ggml.token_type"))
    for (const auto& t : meta["tokenizer.ggml.token_type"]) types.push_back(t.get<int>());
  for (size_t i = 0; i < toks.size(); ++i) {
    std::string t = toks[i].get<std::string>();
    if (!types.empty() && i < types.size() && types[i] == 3) spec.added.emplace_back(t, static_cast<int64_t>(i));
    else spec.vocab.emplace(t, static_cast<int64_t>(i));
  }
  if (!meta.contains("tokenizer.ggml.merges")) throw TokenizerError(where + ": gpt2 vocabulary without tokenizer.ggml.merges");
  for (const auto& m : meta["tokenizer.ggml.merges"]) spec.merges.push_back(parseMerge(m, where));
  auto id = [&](const char* key) { return meta.contains(key) && meta[key].is_number_integer() ? meta[key].get<int64_t>() : -1; };
  spec.bos = id("tokenizer.ggml.bos_token_id");
  spec.eos = id("tokenizer.ggml.eos_token_id");
  spec.addBos = meta.value("tokenizer.ggml.add_bos_token", false);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace headlab
