// Selective capture: only the hooks, heads and positions asked for are kept, with the memory
// they need known before the run; and the mean activation over a prompt set (mean ablation).
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace headlab {

class HookedTransformer;

struct CaptureSpec {
  std::vector<std::string> hooks;  // exact names (use HookRegistry::match for globs)
  std::vector<int64_t> heads;      // empty = all; applies to activations with a head axis
  std::vector<int64_t> positions;  // empty = all; query positions for attention, positions otherwise
};

// Bytes the capture keeps for a `pos`-token prompt (float32, batch 1).
uint64_t estimateCaptureBytes(const HookedTransformer& model, const CaptureSpec& spec, int64_t pos);

// One forward; returns hook name -> activation restricted to the requested heads and positions
// (float32, on the model's device). Throws InputError for unknown hooks, heads or positions.
std::map<std::string, at::Tensor> captureActivations(HookedTransformer& model, const std::vector<int64_t>& tokens,
                                                     const CaptureSpec& spec);

// The mean of one hook's activation over a prompt set: averaged over prompts and, unless
// perPosition, over positions too. Shape [1, pos or 1, ...] ready to be a Mean intervention's source.
// With perPosition the prompts must have equal length.
at::Tensor meanActivation(HookedTransformer& model, const std::string& hook, const std::vector<std::vector<int64_t>>& prompts,
                          bool perPosition = false);

}  // namespace headlab
