#pragma once
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace headlab {
class Tokenizer;
std::string replaceAll(std::string s, const std::string& from, const std::string& to);
std::unique_ptr<Tokenizer> makeScoreBpeFromGguf(const nlohmann::json& meta, const std::string& where);
std::unique_ptr<Tokenizer> makeBpeFromGguf(const nlohmann::json& meta, const std::string& where);
extern const char* const kGpt2SplitRegex;
extern const char* const kLlama3SplitRegex;
}  // namespace headlab
