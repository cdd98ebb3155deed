// Text helpers the tokenizers share: UTF-8 splitting and checking, byte tokens, replacement. Plain
// C++ (no regex library), so that every tokenizer that needs them links without PCRE2.
#include <string>
#include <vector>

#include "headlab/core/tokenizer.h"
#include "tokenizer_internal.h"

namespace headlab {

bool parseByteToken(const std::string& text, size_t at, unsigned& byte) {
  if (at + 6 > text.size() || text.compare(at, 3, "<0x") != 0 || text[at + 5] != '>') return false;
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
  int hi = hex(text[at + 3]), lo = hex(text[at + 4]);
  if (hi < 0 || lo < 0) return false;
  byte = static_cast<unsigned>(hi * 16 + lo);
  return true;
}

std::vector<std::string> utf8Chars(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (i + len > s.size()) len = 1;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) len = 1;
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

bool isValidUtf8(const std::string& s) {
  for (const auto& ch : utf8Chars(s))
    if (ch.size() == 1 && static_cast<unsigned char>(ch[0]) >= 0x80) return false;
  return true;
}

std::string replaceAll(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

}  // namespace headlab
