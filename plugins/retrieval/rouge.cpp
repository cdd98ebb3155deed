// The Porter stemmer as NLTK writes it (nltk/stem/porter.py, mode NLTK_EXTENSIONS): the 1980 paper's
// five steps plus NLTK's irregular forms and rule changes, each marked where it departs from the paper.
#include "retrieval_scoring.h"

#include <map>
#include <utility>

namespace headlab::plugins {

namespace {
bool isConsonant(const std::string& w, size_t i) {
  const char c = w[i];
  if (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u') return false;
  if (c == 'y') return i == 0 ? true : !isConsonant(w, i - 1);
  return true;
}

// m in [C](VC){m}[V]: the count of vowel-consonant transitions.
int measure(const std::string& s) {
  int m = 0;
  for (size_t i = 1; i < s.size(); ++i)
    if (!isConsonant(s, i - 1) && isConsonant(s, i)) ++m;
  return m;
}

bool containsVowel(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (!isConsonant(s, i)) return true;
  return false;
}

bool endsWith(const std::string& w, const std::string& suffix) {
  return w.size() >= suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool endsDoubleConsonant(const std::string& w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && isConsonant(w, w.size() - 1);
}

// *o: consonant-vowel-consonant, the last not w, x or y; NLTK also accepts a two-letter vowel-consonant word.
bool endsCvc(const std::string& w) {
  const size_t n = w.size();
  if (n >= 3 && isConsonant(w, n - 3) && !isConsonant(w, n - 2) && isConsonant(w, n - 1) && w[n - 1] != 'w' && w[n - 1] != 'x' &&
      w[n - 1] != 'y')
    return true;
  return n == 2 && !isConsonant(w, 0) && isConsonant(w, 1);
}

std::string stripped(const std::string& w, const std::string& suffix) { return w.substr(0, w.size() - suffix.size()); }

using Condition = bool (*)(const std::string& stem);
struct Rule {
  const char* suffix;
  const char* replacement;
  Condition condition;  // nullptr: always
};
bool positiveMeasure(const std::string& s) { return measure(s) > 0; }
bool measureAboveOne(const std::string& s) { return measure(s) > 1; }

// The first rule whose suffix the word ends with decides: replaced when its condition holds, else
// the word is returned unchanged.
std::string applyRules(const std::string& w, const std::vector<Rule>& rules) {
  for (const Rule& r : rules) {
    if (!endsWith(w, r.suffix)) continue;
    const std::string stem = stripped(w, r.suffix);
    return !r.condition || r.condition(stem) ? stem + r.replacement : w;
  }
  return w;
}

std::string step1a(const std::string& w) {
  if (endsWith(w, "ies") && w.size() == 4) return stripped(w, "ies") + "ie";  // NLTK: "ties" -> "tie"
  return applyRules(w, {{"sses", "ss", nullptr}, {"ies", "i", nullptr}, {"ss", "ss", nullptr}, {"s", "", nullptr}});
}

std::string step1b(const std::string& w) {
  if (endsWith(w, "ied")) return stripped(w, "ied") + (w.size() == 4 ? "ie" : "i");  // NLTK
  if (endsWith(w, "eed")) {
    const std::string stem = stripped(w, "eed");
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string stem;
  bool removed = false;
  for (const char* suffix : {"ed", "ing"}) {
    if (!endsWith(w, suffix)) continue;
    stem = stripped(w, suffix);
    if (containsVowel(stem)) {
      removed = true;
      break;
    }
  }
  if (!removed) return w;
  if (endsWith(stem, "at") || endsWith(stem, "bl") || endsWith(stem, "iz")) return stem + "e";
  if (endsDoubleConsonant(stem)) {
    const char last = stem.back();
    return last == 'l' || last == 's' || last == 'z' ? stem : stem.substr(0, stem.size() - 1);
  }
  return measure(stem) == 1 && endsCvc(stem) ? stem + "e" : stem;
}

std::string step1c(const std::string& w) {
  // NLTK: y -> i only after a consonant that is not the whole stem ("happy" -> "happi", "enjoy" stays).
  if (!endsWith(w, "y")) return w;
  const std::string stem = stripped(w, "y");
  return stem.size() > 1 && isConsonant(stem, stem.size() - 1) ? stem + "i" : w;
}

std::string step2(const std::string& w) {
  if (endsWith(w, "alli") && positiveMeasure(stripped(w, "alli"))) return step2(stripped(w, "alli") + "al");  // NLTK
  static const std::vector<Rule> rules = {
      {"ational", "ate", positiveMeasure}, {"tional", "tion", positiveMeasure}, {"enci", "ence", positiveMeasure},
      {"anci", "ance", positiveMeasure},   {"izer", "ize", positiveMeasure},    {"bli", "ble", positiveMeasure},  // NLTK: bli, not abli
      {"alli", "al", positiveMeasure},     {"entli", "ent", positiveMeasure},   {"eli", "e", positiveMeasure},
      {"ousli", "ous", positiveMeasure},   {"ization", "ize", positiveMeasure}, {"ation", "ate", positiveMeasure},
      {"ator", "ate", positiveMeasure},    {"alism", "al", positiveMeasure},    {"iveness", "ive", positiveMeasure},
      {"fulness", "ful", positiveMeasure}, {"ousness", "ous", positiveMeasure}, {"aliti", "al", positiveMeasure},
      {"iviti", "ive", positiveMeasure},   {"biliti", "ble", positiveMeasure},  {"fulli", "ful", positiveMeasure},  // NLTK
  };
  // NLTK's last rule, logi -> log, tests the measure of the word less three letters ("log" kept).
  for (const Rule& r : rules)
    if (endsWith(w, r.suffix)) return applyRules(w, {r});
  if (endsWith(w, "logi")) return positiveMeasure(w.substr(0, w.size() - 3)) ? stripped(w, "logi") + "log" : w;
  return w;
}

std::string step3(const std::string& w) {
  return applyRules(w, {{"icate", "ic", positiveMeasure},
                        {"ative", "", positiveMeasure},
                        {"alize", "al", positiveMeasure},
                        {"iciti", "ic", positiveMeasure},
                        {"ical", "ic", positiveMeasure},
                        {"ful", "", positiveMeasure},
                        {"ness", "", positiveMeasure}});
}

bool ionCondition(const std::string& s) { return measure(s) > 1 && !s.empty() && (s.back() == 's' || s.back() == 't'); }

std::string step4(const std::string& w) {
  return applyRules(w, {{"al", "", measureAboveOne},   {"ance", "", measureAboveOne}, {"ence", "", measureAboveOne},
                        {"er", "", measureAboveOne},   {"ic", "", measureAboveOne},   {"able", "", measureAboveOne},
                        {"ible", "", measureAboveOne}, {"ant", "", measureAboveOne},  {"ement", "", measureAboveOne},
                        {"ment", "", measureAboveOne}, {"ent", "", measureAboveOne},  {"ion", "", ionCondition},
                        {"ou", "", measureAboveOne},   {"ism", "", measureAboveOne},  {"ate", "", measureAboveOne},
                        {"iti", "", measureAboveOne},  {"ous", "", measureAboveOne},  {"ive", "", measureAboveOne},
                        {"ize", "", measureAboveOne}});
}

std::string step5a(const std::string& w) {
  if (!endsWith(w, "e")) return w;
  const std::string stem = stripped(w, "e");
  const int m = measure(stem);
  return m > 1 || (m == 1 && !endsCvc(stem)) ? stem : w;
}

std::string step5b(const std::string& w) {
  // ll -> l when the word less one letter has m > 1.
  return endsWith(w, "ll") && measure(w.substr(0, w.size() - 1)) > 1 ? w.substr(0, w.size() - 1) : w;
}
}  // namespace

std::string porterStem(const std::string& word) {
  static const std::map<std::string, std::string> irregular = {  // NLTK's pool of irregular forms
      {"sky", "sky"},       {"skies", "sky"},     {"dying", "die"},       {"lying", "lie"},     {"tying", "tie"},
      {"news", "news"},     {"innings", "inning"}, {"inning", "inning"},  {"outings", "outing"}, {"outing", "outing"},
      {"cannings", "canning"}, {"canning", "canning"}, {"howe", "howe"},  {"proceed", "proceed"}, {"exceed", "exceed"},
      {"succeed", "succeed"}};
  if (auto it = irregular.find(word); it != irregular.end()) return it->second;
  if (word.size() <= 2) return word;
  return step5b(step5a(step4(step3(step2(step1c(step1b(step1a(word))))))));
}

std::vector<std::string> rougeTokens(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text + " ") {
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if ((lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9')) {
      cur += lower;
    } else if (!cur.empty()) {
      out.push_back(cur.size() > 3 ? porterStem(cur) : cur);
      cur.clear();
    }
  }
  return out;
}

double rouge1Recall(const std::string& prediction, const std::string& target) {
  const auto ref = rougeTokens(target), pred = rougeTokens(prediction);
  if (ref.empty()) return 0;
  std::map<std::string, int> have;
  for (const auto& w : pred) ++have[w];
  int hit = 0;
  for (const auto& w : ref)
    if (have[w]-- > 0) ++hit;
  return static_cast<double>(hit) / static_cast<double>(ref.size());
}

}  // namespace headlab::plugins
