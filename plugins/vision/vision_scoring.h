// Scoring pieces of the vision probes that tests check on their own.
#pragma once
#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

namespace headlab {
class Tokenizer;
}

namespace headlab::plugins {

// LLaVA-1.5's conversation (llava_v1 / vicuna_v1, the template LLaVA's own evaluation scripts and the
// VHD and VAR reference runs use), with the image placeholder before the question.
inline const char* const kLlavaV1Template =
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite "
    "answers to the human's questions. USER: <image>\n{prompt} ASSISTANT:";

// The template a vision probe applies to its text prompt: `requested` when it is not "auto"; for "auto",
// LLaVA-1.5's conversation when the tokenizer spells it (USER: and ASSISTANT: come back from a round trip
// and <image> is the image token), else "{prompt}" (a word-level vocabulary, such as the demo's, would
// turn the template's words into unknown tokens). Throws InputError when a template lacks {prompt}.
std::string conversationTemplate(const Tokenizer* tokenizer, int64_t imageToken, const std::string& requested);
// `tmpl` with {prompt} replaced by `prompt`.
std::string applyTemplate(const std::string& tmpl, const std::string& prompt);

// VHD's outlier filter (He et al. 2025, Eq. 6): the heads [layer, head] whose VHD and whose text-only
// attention output norm (TA) both exceed their layer's mean + standard deviation (population, over the
// layer's heads). Returns a [layer, head] bool mask of the heads to zero.
at::Tensor vhdOutliers(const at::Tensor& vhd, const at::Tensor& ta);

}  // namespace headlab::plugins
