// The retrieval probe's scoring, as nightdessert/Retrieval_Head computes it: ROUGE-1 as Google's
// rouge_score with use_stemmer=True (lower-case; every run of characters other than a-z and 0-9 splits
// words; NLTK's Porter stemmer, default NLTK_EXTENSIONS mode, on tokens longer than 3 characters), the
// answer's span in the prompt ids, and the decoding that records copy events.
#pragma once
#include <ATen/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "headlab/core/interventions.h"

namespace headlab {
class HookedTransformer;
class Tokenizer;
}  // namespace headlab

namespace headlab::plugins {

// NLTK's PorterStemmer().stem(word) for a lower-case ASCII word.
std::string porterStem(const std::string& word);
// rouge_score's tokenize(text, stemmer).
std::vector<std::string> rougeTokens(const std::string& text);
// scorer.score(target, prediction)['rouge1'].recall: target unigrams matched in the prediction
// (multiset), over the target's count; 0 for an empty target.
double rouge1Recall(const std::string& prediction, const std::string& target);

// The answer's span [begin, end) in the prompt ids. An exact occurrence of its ids (encoded alone, or
// after a space for tokenizers that spell a word differently there), the one starting in
// [needleBegin, needleEnd) when there are several; else the reference's rule (find_needle_idx: the
// first window whose distinct ids cover more than 90% of the answer's). Throws InputError when
// neither finds it.
std::pair<int64_t, int64_t> answerSpan(const Tokenizer& tok, const std::vector<int64_t>& prompt, const std::string& answer,
                                       int64_t needleBegin, int64_t needleEnd);

// One test's decoding, as the reference runs it: the prompt less its last token is prefilled without
// the masks (in chunks of prefillChunk); then, with the masks, greedy steps starting from the last
// prompt token, so every generated token is produced under them. Each step adds, per head, 1 / |span|
// when the head's top-1 key lies in [spanBegin, spanEnd) and holds the token just generated. Stops at
// a newline (kept, as the reference keeps '<0x0A>') or after maxNewTokens; the text leaves out BOS and
// EOS and is stripped.
struct NiahDecoding {
  std::vector<int64_t> tokens;
  std::string text;
  at::Tensor score;  // [layer, head] float64
};
NiahDecoding decodeNiah(HookedTransformer& model, const Tokenizer& tok, const std::vector<int64_t>& prompt, int64_t spanBegin,
                        int64_t spanEnd, const std::vector<Intervention>& masks, int64_t maxNewTokens, int64_t prefillChunk = 512);

}  // namespace headlab::plugins
