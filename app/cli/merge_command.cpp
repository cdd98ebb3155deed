// headlab-cli merge OUT.h5 IN.h5...: the shards of one sharded run (patch --pairs --shard i/N, or a
// Slurm job array) joined into the file the unsharded run writes. Refused with the reason: shards of
// different experiments (model files, pairs file or parameters), of different shard counts, a
// missing or duplicated shard, or a file that is not a shard.
#include <ATen/ATen.h>

#include <iostream>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "headlab/core/errors.h"
#include "headlab/core/trace.h"

namespace headlab::cli {

namespace {
constexpr const char* kGroup = "/probes/patching_pairs";

struct ShardFile {
  std::string path;
  nlohmann::json provenance;
  std::map<std::string, std::string> text;  // string parameters
  std::map<std::string, int64_t> ints;      // integer parameters
  std::map<std::string, at::Tensor> arrays; // grids, clean_metric, corrupted_metric, line (float64)
};

ShardFile readShard(const std::string& path) {
  headlab::TraceReader reader(path);  // a corrupt file costs an error, not the program
  h5::File& f = reader.file();
  if (!f.exists(kGroup)) throw headlab::InputError(path + ": not a shard of patch --pairs (no " + std::string(kGroup) + ")");
  ShardFile s;
  s.path = path;
  s.provenance = nlohmann::json::parse(f.attrString("/", "provenance"));
  for (const char* k : {"sweep", "method", "direction", "axes", "shape", "metric", "normalisation", "pairs_sha256", "experiment"})
    s.text[k] = f.attrString(kGroup, k);
  for (const char* k : {"pairs_total", "shard_index", "shard_count", "pair_begin", "pair_end"}) s.ints[k] = f.attrInt(kGroup, k);
  for (const char* k : {"grids", "clean_metric", "corrupted_metric", "line"}) {
    const std::string p = std::string(kGroup) + "/" + k;
    const auto shape = f.shape(p);
    std::vector<float> v = f.readFloats(p);
    std::vector<int64_t> dims(shape.begin(), shape.end());
    s.arrays[k] = at::from_blob(v.data(), dims, at::kFloat).clone().to(at::kDouble);
  }
  return s;
}

// Which recorded parameter tells two experiments apart ("" when none does).
std::string difference(const ShardFile& a, const ShardFile& b) {
  for (const char* k : {"sweep", "method", "direction", "pairs_sha256"})
    if (a.text.at(k) != b.text.at(k)) return std::string(k) + " " + a.text.at(k) + " vs " + b.text.at(k);
  if (a.ints.at("pairs_total") != b.ints.at("pairs_total")) return "the number of pairs";
  if (a.provenance["model"]["files"] != b.provenance["model"]["files"]) return "the model's files (their SHA-256)";
  return a.text.at("experiment") != b.text.at("experiment") ? "the dtype" : "";
}
}  // namespace

int cmdMerge(const Args& a) {
  const auto& files = a.positional();
  if (files.size() < 2) throw UsageError("merge needs OUT.h5 and at least one shard: headlab-cli merge OUT.h5 IN.h5...");
  const std::string out = files[0];
  std::vector<ShardFile> shards;
  for (size_t i = 1; i < files.size(); ++i) shards.push_back(readShard(files[i]));
  const ShardFile& first = shards.front();
  const int64_t count = first.ints.at("shard_count");
  std::vector<std::optional<size_t>> byIndex(static_cast<size_t>(count));
  for (size_t i = 0; i < shards.size(); ++i) {
    const ShardFile& s = shards[i];
    const std::string why = difference(first, s);
    if (!why.empty()) throw headlab::InputError(s.path + ": from another experiment than " + first.path + " (" + why + ")");
    if (s.ints.at("shard_count") != count)
      throw headlab::InputError(s.path + ": shard of " + std::to_string(s.ints.at("shard_count")) + ", " + first.path + " of " + std::to_string(count));
    const int64_t index = s.ints.at("shard_index");
    if (index < 0 || index >= count) throw headlab::InputError(s.path + ": shard index " + std::to_string(index) + " outside [0, " + std::to_string(count) + ")");
    if (byIndex[index]) throw headlab::InputError("shard " + std::to_string(index) + "/" + std::to_string(count) + " given twice: " + shards[*byIndex[index]].path + " and " + s.path);
    byIndex[index] = i;
  }
  for (int64_t i = 0; i < count; ++i)
    if (!byIndex[i]) throw headlab::InputError("shard " + std::to_string(i) + "/" + std::to_string(count) + " missing (run it with --shard " + std::to_string(i) + "/" + std::to_string(count) + ")");
  // In shard order: every pair once, none missing.
  std::vector<at::Tensor> grids, clean, corrupted, lines;
  int64_t next = 0;
  for (const auto& slot : byIndex) {
    const ShardFile& s = shards[*slot];
    if (s.ints.at("pair_begin") != next || s.ints.at("pair_end") - s.ints.at("pair_begin") != s.arrays.at("grids").size(0))
      throw headlab::InputError(s.path + ": holds pairs " + std::to_string(s.ints.at("pair_begin")) + ":" + std::to_string(s.ints.at("pair_end")) +
                                ", expected to start at " + std::to_string(next) + " (a damaged or hand-made shard)");
    next = s.ints.at("pair_end");
    for (int64_t p = 0; p < s.arrays.at("grids").size(0); ++p) grids.push_back(s.arrays.at("grids")[p]);
    clean.push_back(s.arrays.at("clean_metric")), corrupted.push_back(s.arrays.at("corrupted_metric")), lines.push_back(s.arrays.at("line"));
  }
  if (next != first.ints.at("pairs_total"))
    throw headlab::InputError("the shards hold " + std::to_string(next) + " of " + std::to_string(first.ints.at("pairs_total")) + " pairs");
  const at::Tensor all = at::stack(grids);  // as patch --pairs computes them: [pairs, ...grid], float64
  nlohmann::json params = {{"pairs_total", next}, {"shard_index", 0}, {"shard_count", 1}, {"pair_begin", 0}, {"pair_end", next}};
  for (const auto& [k, v] : first.text) params[k] = v;
  nlohmann::json record = first.provenance;
  record["command_line"] = commandLine();
  record["merged_from"] = nlohmann::json::array();
  for (const auto& slot : byIndex) record["merged_from"].push_back(shards[*slot].path);
  headlab::TraceOptions opts = traceOptions(a);
  headlab::TraceWriter w(out, opts);
  w.writeModelFromProvenance(record);
  w.writeProbe("patching_pairs", params,
               {{"grids", all}, {"clean_metric", at::cat(clean)}, {"corrupted_metric", at::cat(corrupted)}, {"line", at::cat(lines)},
                {"mean", all.mean(0)}, {"std", grids.size() > 1 ? all.std(0) : at::zeros_like(all[0])}});
  w.commit();
  std::cout << out << "  (" << count << " shards, " << next << " pairs)\n";
  return 0;
}

}  // namespace headlab::cli
