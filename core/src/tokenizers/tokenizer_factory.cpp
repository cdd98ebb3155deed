#include <filesystem>

#include <nlohmann/json.hpp>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"
#include "headlab/core/tensor_store.h"
#include "headlab/core/tokenizer.h"
#include "tokenizer_internal.h"

namespace headlab {


int64_t checkedTokenId(const nlohmann::json& id, const std::string& token, const std::string& where) {
  if (!id.is_number_integer()) throw TokenizerError(where + ": id of '" + token + "' is not an integer");
  const int64_t v = id.get<int64_t>();
  if (v < 0 || v >= (int64_t(1) << 24))
    throw TokenizerError(where + ": id " + std::to_string(v) + " of '" + token + "' is out of range [0, 16777216)");
  return v;
}



namespace {
// Minimal protobuf wire-format reader for SentencePiece's ModelProto: field 1 holds the
// pieces {1: piece (string), 2: score (float), 3: type (enum)}. Nothing else is needed to
// tokenize BPE models, and a private reader avoids libsentencepiece's protobuf, which clashes
// with libtorch's.
uint64_t readVarint(ByteReader& r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t b = r.read<uint8_t>("varint");
    v |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r.fail("varint longer than 10 bytes");
}

void skipField(ByteReader& r, uint32_t wire) {
  switch (wire) {
    case 0: readVarint(r); break;
    case 1: r.skip(8, "fixed64"); break;
    case 2: r.skip(readVarint(r), "length-delimited field"); break;
    case 5: r.skip(4, "fixed32"); break;
    default: r.fail("unsupported protobuf wire type " + std::to_string(wire));
  }
}
}  // namespace

std::unique_ptr<Tokenizer> loadSentencePieceModel(const std::string& path) {
  MappedFile f(path);
  ByteReader r(f.data(), f.size(), path);
  nlohmann::json meta = nlohmann::json::object();
  nlohmann::json tokens = nlohmann::json::array(), scores = nlohmann::json::array(), types = nlohmann::json::array();
  while (r.remaining() > 0) {
    uint64_t key = readVarint(r);
    uint32_t field = static_cast<uint32_t>(key >> 3), wire = key & 7;
    if (field != 1 || wire != 2) {
      skipField(r, wire);
      continue;
    }
    uint64_t len = readVarint(r);
    if (len > r.remaining()) r.fail("piece message longer than the file");
    ByteReader piece(f.data() + r.offset(), len, path);
    r.skip(len, "piece");
    std::string text;
    float score = 0;
    int type = 1;
    while (piece.remaining() > 0) {
      uint64_t k = readVarint(piece);
      uint32_t fld = static_cast<uint32_t>(k >> 3), w = k & 7;
      if (fld == 1 && w == 2) {
        uint64_t n = readVarint(piece);
        text = piece.readString(n, "piece text");
      } else if (fld == 2 && w == 5) {
        score = piece.read<float>("piece score");
      } else if (fld == 3 && w == 0) {
        type = static_cast<int>(readVarint(piece));
      } else {
        skipField(piece, w);
      }
    }
    tokens.push_back(text), scores.push_back(score), types.push_back(type);
  }
  if (tokens.size() < 3) throw TokenizerError(path + ": not a SentencePiece model (" + std::to_string(tokens.size()) + " pieces)");
  meta["tokenizer.ggml.tokens"] = std::move(tokens);
  meta["tokenizer.ggml.scores"] = std::move(scores);
  meta["tokenizer.ggml.token_type"] = std::move(types);
  int64_t bos = -1, eos = -1;
  for (size_t i = 0; i < meta["tokenizer.ggml.tokens"].size(); ++i) {
    const std::string t = meta["tokenizer.ggml.tokens"][i];
    if (t == "<s>") bos = static_cast<int64_t>(i);
    if (t == "</s>") eos = static_cast<int64_t>(i);
  }
  meta["tokenizer.ggml.bos_token_id"] = bos;
  meta["tokenizer.ggml.eos_token_id"] = eos;
  return makeScoreBpeFromGguf(meta, path);
}

std::unique_ptr<Tokenizer> tokenizerFromGguf(const nlohmann::json& meta, const std::string& where) {
  if (!meta.contains("tokenizer.ggml.tokens") || !meta["tokenizer.ggml.tokens"].is_array())
    throw TokenizerError(where + ": no tokenizer.ggml.tokens array");
  std::string model = meta.value("tokenizer.ggml.model", "llama");
  try {
    if (model == "llama") return makeScoreBpeFromGguf(meta, where);
    if (model == "gpt2") return makeBpeFromGguf(meta, where);
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(where + ": malformed tokenizer metadata: " + e.what());
  }
  throw TokenizerError(where + ": tokenizer.ggml.model '" + model + "' unsupported (expected llama or gpt2)");
}

int64_t resolveSingleToken(const Tokenizer& tok, const std::string& text) {
  if (text.empty()) throw InputError("empty token: give a token's text or #id");
  if (text[0] == '#' && text.size() > 1 && text.find_first_not_of("0123456789", 1) == std::string::npos) {
    int64_t id = std::stoll(text.substr(1));
    if (id >= tok.vocabSize()) throw InputError("token id " + text + " out of range [0, " + std::to_string(tok.vocabSize()) + ")");
    return id;
  }
  for (int64_t id = 0; id < tok.vocabSize(); ++id)
    if (tok.tokenString(id) == text) return id;
  auto ids = tok.encode(text, false);
  if (ids.size() == 1) return ids[0];
  throw InputError("'" + text + "' is " + std::to_string(ids.size()) + " tokens, not one; give a single token (e.g. a piece as the token strip shows it) or #id");
}

std::unique_ptr<Tokenizer> loadTokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (fs::is_directory(p)) {
    if (fs::exists(p / "tokenizer.json")) return loadHfTokenizerJson((p / "tokenizer.json").string());
    if (fs::exists(p / "tokenizer.model")) return loadSentencePieceModel((p / "tokenizer.model").string());
    if (fs::exists(p / "encoder.json") && fs::exists(p / "vocab.bpe"))
      return loadGpt2Vocab((p / "encoder.json").string(), (p / "vocab.bpe").string());
    if (fs::exists(p / "vocab.json") && fs::exists(p / "merges.txt"))
      return loadGpt2Vocab((p / "vocab.json").string(), (p / "merges.txt").string());
    throw IoError(path + ": no tokenizer.json, tokenizer.model or encoder.json + vocab.bpe in this folder");
  }
  if (!fs::exists(p)) throw IoError(path + ": no such file");
  std::string ext = p.extension().string();
  if (ext == ".json") return loadHfTokenizerJson(path);
  if (ext == ".model") return loadSentencePieceModel(path);
  if (ext == ".gguf") {
    GgufFile g = readGguf(path);
    return tokenizerFromGguf(g.metadata, path);
  }
  if (ext == ".bin") return loadLlama2cTokenizer(path);
  throw IoError(path + ": unknown tokenizer file type '" + ext + "' (expected .json, .model, .gguf or .bin)");
}

}  // namespace headlab
