#pragma once
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace headlab {
class Tokenizer;
std::string replaceAll(std::string s, const std::string& from, const std::string& to);
std::unique_ptr<Tokenizer> makeScoreBpeFromGguf(const nlohmann::json& meta, const std::string& where);
std::unique_ptr<Tokenizer> makeBpeFromGguf(const nlohmann::json& meta, const std::string& where);
// "<0xNN>" with exactly two hex digits at text[at]: sets byte and returns true.
bool parseByteToken(const std::string& text, size_t at, unsigned& byte);
// A vocabulary id from JSON: an integer in [0, 2^24). Throws TokenizerError naming the token.
int64_t checkedTokenId(const nlohmann::json& id, const std::string& token, const std::string& where);
extern const char* const kGpt2SplitRegex;
extern const char* const kLlama3SplitRegex;
}  // namespace headlab
