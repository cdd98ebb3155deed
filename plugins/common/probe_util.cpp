#include "probe_util.h"

#include "headlab/core/attention_tiles.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include <c10/core/InferenceMode.h>

#include <cctype>
#include <map>

#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/tokenizer.h"

namespace headlab::plugins {

namespace {
const char kSinkPrompts[] =
#include "sinks_prompts.inc"
    ;
}  // namespace

const std::vector<std::string>& builtinPrompts() {
  static const std::vector<std::string> prompts = [] {
    std::vector<std::string> out;
    std::string all(kSinkPrompts), line;
    for (char c : all) {
      if (c == '\n') {
        if (!line.empty()) out.push_back(line);
        line.clear();
      } else {
        line += c;
      }
    }
    if (!line.empty()) out.push_back(line);
    return out;
  }();
  return prompts;
}

nlohmann::json mergeParams(const Probe& p, const nlohmann::json& user) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& param : p.parameters()) out[param.name] = param.defaultValue;
  if (user.is_object()) {
    for (auto& [k, v] : user.items()) {
      if (!out.contains(k)) {
        std::string known;
        for (const auto& param : p.parameters()) known += (known.empty() ? "" : ", ") + param.name;
        throw InputError("probe " + p.name() + " has no parameter '" + k + "' (parameters: " + known + ")");
      }
      out[k] = v;
    }
  }
  return out;
}

std::vector<std::string> promptsFrom(const nlohmann::json& params) {
  if (params.contains("prompts") && params["prompts"].is_array() && !params["prompts"].empty())
    return params["prompts"].get<std::vector<std::string>>();
  return builtinPrompts();
}

std::vector<at::Tensor> capturePatterns(HookedTransformer& model, const std::vector<int64_t>& tokens) {
  c10::InferenceMode guard;
  const int L = static_cast<int>(model.config().n_layers);
  std::vector<at::Tensor> out(L);
  std::vector<HookHandle> hs;
  for (int l = 0; l < L; ++l)
    hs.push_back(model.hooks().add(model.hooks().idOf(l, LayerHook::Pattern),
                                   [&out, l](at::Tensor& p, const HookContext&) { out[l] = p[0].to(at::kCPU, at::kFloat); }));
  model.forward(at::tensor(tokens, at::kLong).unsqueeze(0));
  return out;
}

int64_t explicitPatternLimit() {
  const char* mb = std::getenv("HEADLAB_EXPLICIT_PATTERN_MB");
  return (mb && *mb ? std::atoll(mb) : 256) << 20;
}

void forEachPatternBlock(HookedTransformer& model, const std::vector<int64_t>& tokens,
                         const std::function<void(int, int64_t, const at::Tensor&)>& fn, bool blockwise) {
  const auto& c = model.config();
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (!blockwise && static_cast<double>(c.n_layers) * c.n_heads * T * T * 4 <= static_cast<double>(explicitPatternLimit())) {
    const auto patterns = capturePatterns(model, tokens);
    for (int l = 0; l < c.n_layers; ++l) fn(l, 0, patterns[l]);
    return;
  }
  c10::InferenceMode guard;
  const AttentionTiles tiles(model, at::tensor(tokens, at::kLong).unsqueeze(0));
  // Row blocks of about 32 MB: [head, rows, T] float32 (HEADLAB_PATTERN_BLOCK_ROWS: a fixed count, so
  // tests cross block edges on short prompts).
  const char* fixed = std::getenv("HEADLAB_PATTERN_BLOCK_ROWS");
  const int64_t block = fixed && std::atoll(fixed) > 0 ? std::atoll(fixed) : std::max<int64_t>(1, (int64_t(32) << 20) / (c.n_heads * T * 4));
  for (int l = 0; l < c.n_layers; ++l)
    for (int64_t r0 = 0; r0 < T; r0 += block) {
      const int64_t r1 = std::min(T, r0 + block);
      fn(l, r0, tiles.pattern(l, {}, r0, r1, 0, T).to(at::kCPU));
    }
}

at::Tensor keyColumnSums(HookedTransformer& model, const std::vector<int64_t>& tokens, bool blockwise) {
  const auto& c = model.config();
  at::Tensor sums = at::zeros({c.n_layers, c.n_heads, static_cast<int64_t>(tokens.size())}, at::kFloat);
  forEachPatternBlock(model, tokens, [&](int l, int64_t, const at::Tensor& rows) { sums[l] += rows.sum(1); }, blockwise);
  return sums;
}

std::vector<int64_t> encodePrompt(const Tokenizer& tok, const std::string& text, int64_t maxTokens, bool bos) {
  if (text.empty()) throw InputError("empty prompt in the prompt set");
  auto ids = tok.encode(text, bos);
  if (maxTokens > 0 && static_cast<int64_t>(ids.size()) > maxTokens) ids.resize(static_cast<size_t>(maxTokens));
  return ids;
}

nlohmann::json gridJson(const std::string& name, const at::Tensor& grid) {
  at::Tensor g = grid.to(at::kDouble).contiguous().cpu();
  return {{"name", name},
          {"layers", g.size(0)},
          {"heads", g.size(1)},
          {"values", std::vector<double>(g.data_ptr<double>(), g.data_ptr<double>() + g.numel())}};
}

at::Tensor copyEvents(const at::Tensor& top1, int64_t generated, const std::vector<int64_t>& prompt, int64_t needleBegin,
                      int64_t needleEnd) {
  at::Tensor keys = top1.to(at::kLong).cpu();
  at::Tensor out = at::zeros(keys.sizes(), at::kDouble);
  const int64_t* k = keys.data_ptr<int64_t>();
  double* o = out.data_ptr<double>();
  for (int64_t i = 0; i < keys.numel(); ++i)
    if (k[i] >= needleBegin && k[i] < needleEnd && k[i] < static_cast<int64_t>(prompt.size()) && prompt[k[i]] == generated) o[i] = 1.0;
  return out;
}

bool reportProgress(ProbeContext& ctx, double fraction, const std::string& stage) {
  if (ctx.progress && !ctx.progress(fraction, stage)) throw CancelledError();
  return true;
}

}  // namespace headlab::plugins

namespace headlab::plugins {

std::string formatText(const char* format, ...) {
  va_list args;
  va_start(args, format);
  char buffer[512];
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  return buffer;
}

std::string bestHeadText(const nlohmann::json& grid, int digits) {
  const auto values = grid["values"].get<std::vector<double>>();
  if (values.empty()) return "none";
  const auto best = std::max_element(values.begin(), values.end()) - values.begin();
  const int64_t heads = grid["heads"].get<int64_t>();
  char text[64];
  std::snprintf(text, sizeof text, "L%lldH%lld (%.*f)", static_cast<long long>(best / heads), static_cast<long long>(best % heads), digits,
                values[static_cast<size_t>(best)]);
  return text;
}

}  // namespace headlab::plugins
