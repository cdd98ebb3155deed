#include "headlab/core/prompt_sets.h"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <random>

#include "headlab/core/errors.h"
#include "headlab/core/tokenizer.h"

namespace headlab {

namespace {
// Common first names (capitalised for BPE vocabularies of English text, lower-case for word-level
// ones such as the demo model's).
const char* const kNames[] = {"Lily", "Tim", "Ben", "Sam", "Mia", "Max", "Tom", "Sue", "Anna", "Lucy", "Jack", "Kate", "Leo", "Emma", "Sara",
                              "Mark", "John", "Mary", "Bob", "Amy", "Jane", "Zoe", "Mike", "Lisa", "Paul", "Dan", "Joe", "Ann", "Eve", "Kim"};
const char* const kLowerCaseNames[] = {"anna", "ben", "carl", "dora", "emma", "finn", "gina", "hugo", "ida", "jack", "kate", "leo", "mia", "nora"};
// Wang et al.'s templates; {A} {B} as in ABBA order: A the indirect object, B the subject.
const char* const kTemplates[] = {
    "Then, {A} and {B} went to the park. {B} gave a ball to",
    "When {A} and {B} got a snack at home, {B} decided to give it to",
    "Then, {A} and {B} had a lot of fun at the school. {B} gave a flower to",
    "After {A} and {B} went to the house, {B} gave a cake to",
    "While {A} and {B} were working at the garden, {B} gave a toy to",
    "Then, {A} and {B} were thinking about going to the park. {B} wanted to give a book to",
};

std::string fill(std::string t, const std::string& first, const std::string& second, const std::string& subject2) {
  // The first "{A}" and "{B}" are the pair's two names in the variant's order; the last "{B}" the subject.
  const auto put = [&t](const std::string& key, const std::string& v) {
    const size_t at = t.find(key);
    t.replace(at, key.size(), v);
  };
  put("{A}", first);
  put("{B}", second);
  put("{B}", subject2);
  return t;
}

// The tokens of `name` inside a sentence (after "and "): byte-level BPE spells it " Lily", SentencePiece
// "▁Lily", a word-level vocabulary "lily". Empty when the name does not stand apart or holds <unk>.
std::vector<int64_t> nameTokens(const Tokenizer& tok, const std::string& name) {
  const auto before = tok.encode("Then, Tim and", false), after = tok.encode("Then, Tim and " + name, false);
  if (after.size() <= before.size() || !std::equal(before.begin(), before.end(), after.begin())) return {};
  std::vector<int64_t> out(after.begin() + static_cast<std::ptrdiff_t>(before.size()), after.end());
  // The first token carries the name (not a bare word-boundary piece): the metric reads it.
  const std::string first = tok.tokenString(out[0]);
  const bool letter = std::any_of(first.begin(), first.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
  return !letter || std::find(out.begin(), out.end(), tok.unk()) != out.end() ? std::vector<int64_t>{} : out;
}
}  // namespace

std::vector<std::string> singleTokenNames(const Tokenizer& tok) {
  std::vector<std::string> out;
  for (const char* name : kNames)
    if (nameTokens(tok, name).size() == 1) out.push_back(name);
  return out;
}

std::vector<PromptPair> ioiPairs(const Tokenizer& tok, int64_t n, uint64_t seed, const std::string& variant) {
  if (variant != "abba" && variant != "baba" && variant != "mixed") throw InputError("IOI variant must be abba, baba or mixed, got '" + variant + "'");
  if (n < 1) throw InputError("IOI: at least one pair");
  // Names as the sentence tokenises them; the answer and the wrong token are the names' first tokens
  // (one token each in GPT-2's vocabulary, as in the paper; a small vocabulary splits some names).
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> tokens;
  // Capitalised names; a word-level vocabulary of lower-case words (the demo model's) gets its own.
  for (const auto& list : {std::vector<const char*>(std::begin(kNames), std::end(kNames)),
                           std::vector<const char*>(std::begin(kLowerCaseNames), std::end(kLowerCaseNames))}) {
    if (names.size() >= 3) break;
    names.clear(), tokens.clear();
    for (const char* name : list)
      if (auto t = nameTokens(tok, name); !t.empty()) names.push_back(name), tokens.push_back(std::move(t));
  }
  if (names.size() < 3) throw InputError("IOI: this tokenizer spells " + std::to_string(names.size()) + " names of HeadLab's list without <unk>; three are needed");
  std::mt19937_64 rng(seed);
  const auto pick = [&](size_t size) { return std::uniform_int_distribution<size_t>(0, size - 1)(rng); };
  std::vector<PromptPair> out;
  int64_t attempts = 0;
  while (static_cast<int64_t>(out.size()) < n) {
    if (++attempts > 100 * n) throw InputError("IOI: could not make " + std::to_string(n) + " pairs of equal lengths with this tokenizer");
    const std::string t = kTemplates[pick(std::size(kTemplates))];
    const size_t ia = pick(names.size());
    size_t ib = pick(names.size()), ic = pick(names.size());
    // Distinct first tokens (the metric's two tokens differ), and C as long as B (equal prompt lengths).
    if (tokens[ia][0] == tokens[ib][0] || tokens[ic][0] == tokens[ib][0] || tokens[ic][0] == tokens[ia][0] || tokens[ic].size() != tokens[ib].size()) continue;
    const std::string &A = names[ia], &B = names[ib], &C = names[ic];
    const bool baba = variant == "baba" || (variant == "mixed" && out.size() % 2 == 1);
    PromptPair p;
    p.variant = baba ? "BABA" : "ABBA";
    p.clean = baba ? fill(t, B, A, B) : fill(t, A, B, B);
    p.corrupted = baba ? fill(t, B, A, C) : fill(t, A, B, C);
    p.answer = tokens[ia][0], p.wrong = tokens[ib][0];
    if (tok.encode(p.clean, true).size() != tok.encode(p.corrupted, true).size()) continue;  // a name that merges with its neighbours
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace headlab
