#include "cli_common.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <fstream>
#include <iterator>
#include <sstream>

#include <QImage>

#include "headlab/core/errors.h"
#include "headlab/core/provenance.h"
#include "headlab/core/tensor_export.h"
#include "headlab/core/tokenizer.h"
#include "headlab/core/vision_language.h"

namespace headlab::cli {

at::Tensor readImage(const std::string& path, const headlab::VisionTowerConfig& c) {
  QImage img(QString::fromStdString(path));
  if (img.isNull()) throw headlab::IoError(path + ": cannot read the image (PNG, JPEG, BMP or PPM expected)");
  img = img.convertToFormat(QImage::Format_RGB888);
  std::vector<uint8_t> rgb;
  rgb.reserve(static_cast<size_t>(img.width()) * img.height() * 3);
  for (int y = 0; y < img.height(); ++y) {
    const uchar* row = img.constScanLine(y);
    rgb.insert(rgb.end(), row, row + img.width() * 3);
  }
  return headlab::clipPreprocess(rgb, img.width(), img.height(), c);
}

headlab::LoadOptions loadOptions(const Args& a) {
  headlab::LoadOptions o;
  o.tokenizerPath = a.get("tokenizer");
  o.device = a.get("device", "cpu");
  o.dtype = a.get("dtype", "float32");
  o.maxBytes = static_cast<uint64_t>(a.integer("max-model-mb", 0)) << 20;
  return o;
}

OpenedModel openAny(const Args& a, bool tokenizerRequired) {
  headlab::SessionOptions so;
  so.load = loadOptions(a);
  so.tokenizerRequired = false;  // checked below, with the CLI's own advice
  const std::string spec = a.require("model");
  if (spec == "demo-vlm" || spec == "demo")
    so.load.progress = [](double f, const std::string& stage) {
      std::cerr << "\r" << static_cast<int>(f * 100) << "% " << stage << "        " << std::flush;
      return true;
    };
  OpenedModel o = headlab::openModelSession(spec, so);
  if (o.vlm) {
    if (a.has("image")) o.pixels = readImage(a.get("image"), o.vlm->visionConfig());
  } else {
    for (const char* flag : {"image", "corrupted-image"})
      if (a.has(flag))
        throw headlab::InputError(std::string("--") + flag + " needs a vision-language model (a LLaVA folder or demo-vlm); " + spec + " is not one");
  }
  if (tokenizerRequired && !o.loaded.tokenizer) throw headlab::TokenizerError(o.loaded.source + ": no tokenizer found; pass --tokenizer");
  o.model().setAttentionImpl(attentionImpl(a));
  o.model().clearAttentionUsed();  // the provenance records what this command's forwards ran
  return o;
}

Shard shardOf(const Args& a) {
  Shard s;
  const auto number = [](const std::string& t, const std::string& what) -> int64_t {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(t, &used);
    } catch (const std::exception&) {
    }
    if (t.empty() || used != t.size() || v < 0) throw UsageError(what + " must be a non-negative integer, got '" + t + "'");
    return v;
  };
  if (a.has("shard")) {
    const std::string v = a.get("shard");
    const size_t slash = v.find('/');
    if (slash == std::string::npos) throw UsageError("--shard expects i/N (e.g. 0/4), got '" + v + "'");
    s.index = number(v.substr(0, slash), "--shard's i"), s.count = number(v.substr(slash + 1), "--shard's N");
    if (s.count < 1 || s.index >= s.count) throw UsageError("--shard " + v + ": i must be in [0, N) and N at least 1");
    return s;
  }
  const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
  if (!id || !count) return s;
  const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
  s.index = number(id, "SLURM_ARRAY_TASK_ID") - (min ? number(min, "SLURM_ARRAY_TASK_MIN") : 0), s.count = number(count, "SLURM_ARRAY_TASK_COUNT");
  if (s.count < 1 || s.index < 0 || s.index >= s.count)
    throw UsageError("SLURM_ARRAY_TASK_ID " + std::string(id) + " is outside an array of " + count + " tasks (use --array=0-" +
                     std::to_string(s.count - 1) + ")");
  return s;
}

headlab::AttentionImpl attentionImpl(const Args& a) {
  const std::string v = a.get("attention", "auto");
  if (v == "auto") return headlab::AttentionImpl::Auto;
  if (v == "explicit") return headlab::AttentionImpl::Explicit;
  if (v == "blockwise") return headlab::AttentionImpl::Blockwise;
  throw UsageError("--attention must be auto, explicit or blockwise, got '" + v + "'");
}

// The prompt as ids: --ids "0,0,2,1" (taken as given, no tokenizer needed), else --prompt encoded
// with BOS by the model's tokenizer.
// "0,5,7" (commas or spaces) as token ids; `flag` names the option in errors.
std::vector<int64_t> parseIds(const std::string& text, const std::string& flag) {
  std::vector<int64_t> ids;
  std::string list = text;
  std::replace(list.begin(), list.end(), ',', ' ');
  std::istringstream in(list);
  for (std::string item; in >> item;) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(item, &used);
    } catch (const std::exception&) {
    }
    if (used != item.size() || id < 0) throw headlab::InputError(flag + ": '" + item + "' is not a token id (expected e.g. " + flag + " 0,0,2,1)");
    ids.push_back(id);
  }
  if (ids.empty()) throw headlab::InputError("empty prompt (" + flag + " \"\")");
  return ids;
}

// A prompt given as text (--TEXT, encoded with BOS) or as ids (--TEXT-ids, or --ids for --prompt).
std::vector<int64_t> promptIds(const Args& a, const headlab::Tokenizer* tok, const std::string& textKey) {
  const std::string idsKey = textKey == "prompt" ? "ids" : textKey + "-ids";
  if (a.has(idsKey)) return parseIds(a.get(idsKey), "--" + idsKey);
  // --ids-file / --prompt-file: a long prompt (a 32K-token context does not fit on a command line).
  const auto readFile = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw headlab::IoError(path + ": cannot open");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  if (textKey == "prompt" && a.has("ids-file")) return parseIds(readFile(a.get("ids-file")), "--ids-file " + a.get("ids-file"));
  if (textKey == "prompt" && a.has("prompt-file")) {
    const std::string text = readFile(a.get("prompt-file"));
    if (text.empty()) throw headlab::InputError("empty prompt (--prompt-file " + a.get("prompt-file") + ")");
    if (!tok) throw headlab::TokenizerError("no tokenizer found; pass --tokenizer, or give the prompt as ids with --ids-file F");
    return tok->encode(text, true);
  }
  const std::string prompt = a.require(textKey);
  if (prompt.empty()) throw headlab::InputError("empty prompt (--" + textKey + " \"\")");
  if (!tok) throw headlab::TokenizerError("no tokenizer found; pass --tokenizer, or give the prompt as ids with --" + idsKey + " 0,5,7");
  return tok->encode(prompt, true);
}

// --answer / --wrong: "#id" needs no tokenizer; a piece or word needs one.
int64_t answerToken(const Args& a, const headlab::Tokenizer* tok, const std::string& key) {
  const std::string v = a.require(key);
  if (!tok) {
    if (v.size() < 2 || v[0] != '#') throw headlab::TokenizerError("no tokenizer found: give --" + key + " as a token id, e.g. #42");
    return parseIds(v.substr(1), "--" + key).at(0);
  }
  return headlab::resolveSingleToken(*tok, v);
}

InstalledEdits installEdits(const Args& a, HookedTransformer& model) {
  InstalledEdits out;
  if (!a.has("edit")) return out;
  const auto& c = model.config();
  for (const auto& iv : parseInterventions(a.get("edit"), c.n_layers, c.n_heads)) {
    for (auto& h : install(model, iv)) out.handles.push_back(std::move(h));
    out.described.push_back(iv.describe());
  }
  return out;
}

std::string& commandLine() {
  static std::string line;
  return line;
}

TraceOptions traceOptions(const Args& a) {
  TraceOptions o;
  o.force = a.has("force");
  o.provenance.commandLine = commandLine();
  o.provenance.dtype = a.get("dtype", "float32");
  o.provenance.device = a.get("device", "cpu");
  o.provenance.seed = a.has("seed") ? a.integer("seed", 0) : -1;
  // Auto: blockwise in layers whose explicit scores would pass 128 MB and nothing hooks them.
  o.provenance.attention = attentionImplName(attentionImpl(a));
  if (a.has("tokenizer")) o.provenance.extraFiles.push_back(a.get("tokenizer"));
  if (a.has("image")) o.provenance.extraFiles.push_back(a.get("image"));
  return o;
}

std::string outputFormat(const Args& a) {
  const std::string f = a.get("format", "hdf5");
  if (f != "hdf5" && f != "safetensors" && f != "npz") throw UsageError("--format must be hdf5, safetensors or npz, got '" + f + "'");
  return f;
}

void writeArrayFile(const Args& a, const ModelConfig& config, const std::string& source, const std::string& format, const std::string& schema,
                    const std::map<std::string, at::Tensor>& arrays, std::map<std::string, std::string> meta) {
  ProvenanceInputs in = traceOptions(a).provenance;
  in.modelSource = source, in.modelFormat = format;
  const nlohmann::json prov = provenance(config, in);
  meta["schema"] = schema;
  meta["provenance"] = prov.dump(-1, ' ', true);
  const std::string out = a.require("out");
  if (outputFormat(a) == "safetensors") {
    writeSafetensors(out, arrays, meta, a.has("force"));
  } else {
    nlohmann::json all = nlohmann::json::object();
    for (const auto& [k, v] : meta) all[k] = k == "schema" ? nlohmann::json(v) : nlohmann::json::parse(v);
    writeNpz(out, arrays, all.dump(-1, ' ', true), a.has("force"));
  }
  writeProvenanceSidecar(out, prov);
}

}  // namespace headlab::cli
