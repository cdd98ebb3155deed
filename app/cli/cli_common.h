// What the headlab-cli commands share: opening the model the user named, prompts as text or ids,
// answer tokens, images. Results on stdout, logs and progress on stderr (PRODUCT.md §6).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "cli_args.h"
#include "headlab/core/interventions.h"
#include "headlab/core/model_session.h"
#include "headlab/core/trace.h"

namespace headlab::cli {

// Reads an image file (any format Qt reads) and preprocesses it for the model's vision tower.
at::Tensor readImage(const std::string& path, const VisionTowerConfig& c);
LoadOptions loadOptions(const Args& a);  // --tokenizer, --device, --dtype, --max-model-mb

// Any model the CLI takes (openModelSession): a text model, or a vision-language one (a LLaVA
// folder or demo-vlm, trained on first use) with the image of --image. Text commands run on its decoder.
using OpenedModel = ModelSession;
OpenedModel openAny(const Args& a, bool tokenizerRequired = true);

// "0,5,7" (commas or spaces) as token ids; `flag` names the option in errors.
std::vector<int64_t> parseIds(const std::string& text, const std::string& flag);
// The prompt as ids: --ids "0,0,2,1" (taken as given, no tokenizer needed), else --prompt (textKey)
// encoded with BOS by the model's tokenizer.
std::vector<int64_t> promptIds(const Args& a, const Tokenizer* tok, const std::string& textKey = "prompt");
// --answer / --wrong: one token of the vocabulary (" Paris") or an id ("#42").
int64_t answerToken(const Args& a, const Tokenizer* tok, const std::string& key);

// --edit SPEC (parseInterventions' text: zero:3.1;act:2-4.*:beta=0.4;pasta:5.*:keys=3-7) installed on
// `model` for as long as the result lives; `described` lists them for outputs. Empty without --edit.
// The command line as run (set once by main), recorded in every file's provenance.
std::string& commandLine();
// Trace options from the command line: --force, and the provenance inputs (command line, --dtype,
// --device, --seed, --tokenizer and --image files).
TraceOptions traceOptions(const Args& a);
// Which share of a prompt set this process runs: --shard i/N, else Slurm's job-array variables
// (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT), else 0/1. Items
// [begin(n), end(n)) of n: contiguous slices, the same for every run (re-running a shard is safe).
struct Shard {
  int64_t index = 0, count = 1;
  int64_t begin(int64_t n) const { return n * index / count; }
  int64_t end(int64_t n) const { return n * (index + 1) / count; }
};
Shard shardOf(const Args& a);

// --attention auto|explicit|blockwise (headlab/core/hooked_transformer.h); UsageError otherwise.
headlab::AttentionImpl attentionImpl(const Args& a);

// --format: "hdf5" (the default) or, for arrays, "safetensors" / "npz" (UsageError otherwise).
std::string outputFormat(const Args& a);
// Writes `arrays` to --out as safetensors or npz with `meta` (each value a JSON text) plus the schema and
// the provenance of `config` / source / format, and the provenance sidecar.
void writeArrayFile(const Args& a, const ModelConfig& config, const std::string& source, const std::string& format, const std::string& schema,
                    const std::map<std::string, at::Tensor>& arrays, std::map<std::string, std::string> meta);

struct InstalledEdits {
  std::vector<HookHandle> handles;
  nlohmann::json described = nlohmann::json::array();
};
InstalledEdits installEdits(const Args& a, HookedTransformer& model);

int cmdPatch(const Args& a);  // patch_command.cpp
int cmdLens(const Args& a);   // lens_command.cpp
int cmdDla(const Args& a);    // lens_command.cpp
int cmdMerge(const Args& a);  // merge_command.cpp
int cmdPairs(const Args& a);  // pairs_command.cpp
int cmdProbe(const Args& a);  // probe_command.cpp

}  // namespace headlab::cli
