// Helpers the probes share: the built-in prompt set, parameter merging, pattern capture.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "headlab/plugins/probe_plugin.h"

namespace headlab::plugins {

// The built-in prompt set for sinks and streaming (resources/prompts/sinks.txt, compiled in).
const std::vector<std::string>& builtinPrompts();
// Defaults from the probe's parameter list, overridden by the user's values; unknown keys are errors.
nlohmann::json mergeParams(const Probe& p, const nlohmann::json& user);
// Prompts from params["prompts"] (array of strings) or the built-in set.
std::vector<std::string> promptsFrom(const nlohmann::json& params);
// Post-softmax attention of every layer for one prompt: [layer] -> [head, q, k] (float32, cpu).
std::vector<at::Tensor> capturePatterns(HookedTransformer& model, const std::vector<int64_t>& tokens);
// Every layer's pattern for one prompt, in blocks of query rows: fn(layer, firstRow, rows) with rows
// [head, n, T] float32 (keys past a row are 0). Explicit (one forward's patterns, each layer whole)
// while [layers, heads, T, T] float32 stays under kExplicitPatternBytes; past that, or with
// `blockwise`, from attention tiles (headlab/core/attention_tiles.h): no [T, T] is ever held.
constexpr int64_t kExplicitPatternBytes = int64_t(256) << 20;
void forEachPatternBlock(HookedTransformer& model, const std::vector<int64_t>& tokens,
                         const std::function<void(int layer, int64_t firstRow, const at::Tensor& rows)>& fn, bool blockwise = false);
// sum over queries of the attention each key receives: [layer, head, T] float32 (forEachPatternBlock).
at::Tensor keyColumnSums(HookedTransformer& model, const std::vector<int64_t>& tokens, bool blockwise = false);
// Encodes with BOS and keeps at most maxTokens tokens. Throws InputError on an empty result.
std::vector<int64_t> encodePrompt(const Tokenizer& tok, const std::string& text, int64_t maxTokens, bool bos = true);
// {"name", "layers", "heads", "values"} for a [layers, heads] tensor.
nlohmann::json gridJson(const std::string& name, const at::Tensor& grid);
bool reportProgress(ProbeContext& ctx, double fraction, const std::string& stage);  // throws CancelledError

// Retrieval scoring (PROBES.md §2), kept pure so it is tested on hand-built cases:
// 1 where a head's top-1 key (top1 [layer, head]) lies in [needleBegin, needleEnd) and the prompt
// token there equals the token just generated, else 0: [layer, head] float64.
at::Tensor copyEvents(const at::Tensor& top1, int64_t generated, const std::vector<int64_t>& prompt, int64_t needleBegin,
                      int64_t needleEnd);

// printf into a std::string (summary lines).
std::string formatText(const char* format, ...) __attribute__((format(printf, 1, 2)));
// "L3H2 (0.812)": the largest cell of a result's grid, for summary lines.
std::string bestHeadText(const nlohmann::json& grid, int digits = 3);

}  // namespace headlab::plugins
