// Generators of the standard prompt sets (issue #21), written as the JSONL files `patch --pairs`
// reads: deterministic for a seed, checked against the model's tokenizer so that every clean and
// corrupted prompt has the same length and every answer is one token.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace headlab {

class Tokenizer;

struct PromptPair {
  std::string clean, corrupted;
  int64_t answer = -1, wrong = -1;  // token ids
  std::string variant;              // "ABBA" or "BABA"
};

// Indirect object identification (Wang et al. 2022): templates "… A and B … B gave … to" (ABBA) and
// "… B and A … B gave … to" (BABA); the answer is the indirect object A's first token, the wrong
// token the subject B's (names are one token each in GPT-2's vocabulary, as in the paper; a small
// vocabulary splits some), and the corrupted prompt is the paper's "ABC" counterfactual (the second
// subject replaced by a third name C as long as B), so the answer has no cue. variant: "abba", "baba"
// or "mixed" (alternating). Throws InputError when the tokenizer spells fewer than three names.
std::vector<PromptPair> ioiPairs(const Tokenizer& tok, int64_t n, uint64_t seed, const std::string& variant = "mixed");
// The names of ioiPairs' list that are one token after a space for this tokenizer.
std::vector<std::string> singleTokenNames(const Tokenizer& tok);

}  // namespace headlab
