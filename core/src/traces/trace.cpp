#include "headlab/core/trace.h"

#include "headlab/core/attention_tiles.h"
#include "headlab/core/provenance.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "isolated_call.h"

#include <c10/core/InferenceMode.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>

#include "headlab/core/activation_cache.h"
#include "headlab/core/errors.h"
#include "headlab/core/hooked_transformer.h"
#include "headlab/core/model_config.h"
#include "headlab/core/startup.h"
#include "headlab/core/tensor_store.h"

namespace headlab {

namespace fs = std::filesystem;

namespace {
std::string nowIso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::vector<uint64_t> shapeOf(const at::Tensor& t) {
  std::vector<uint64_t> s;
  for (auto d : t.sizes()) s.push_back(static_cast<uint64_t>(d));
  return s;
}

bool isAttention(const std::string& hook) {
  return hook.size() > 12 && (hook.rfind("hook_pattern") == hook.size() - 12 || hook.find("hook_attn_scores") != std::string::npos);
}

std::string tempNameFor(const std::string& target) {
  fs::path p(target);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  return (dir / ("." + p.filename().string() + ".partial-" + std::to_string(::getpid()))).string();
}
}  // namespace

TraceWriter::TraceWriter(std::string target, TraceOptions options)
    : m_target(std::move(target)), m_temp(tempNameFor(m_target)), m_opt(options),
      m_file([&]() -> h5::File {
        if (m_target.empty()) throw InputError("no output file given (--out F.h5)");
        if (fs::exists(m_target) && !options.force)
          throw IoError(m_target + ": exists; pass --force to overwrite");
        fs::path dir = fs::path(m_target).parent_path();
        if (!dir.empty() && !fs::is_directory(dir)) throw IoError(m_target + ": folder " + dir.string() + " does not exist");
        return h5::File::create(m_temp);
      }()) {
  m_file.setAttr("/", "schema", std::string(kTraceSchema));
  m_file.setAttr("/", "schema_version", kTraceSchemaVersion);
  m_file.setAttr("/", "created", nowIso());
  m_file.setAttr("/", "app_version", std::string(appVersion()));
}

TraceWriter::~TraceWriter() {
  if (!m_committed) {
    m_file.close();
    std::error_code ec;
    fs::remove(m_temp, ec);
  }
}

namespace {
// /model: schema, every config key, the source and the format.
void writeModelGroup(h5::File& f, const nlohmann::json& config, const std::string& source, const std::string& format) {
  f.createGroup("/model");
  f.setAttr("/model", "schema", std::string("headlab.model"));
  f.setAttr("/model", "schema_version", kTraceSchemaVersion);
  for (auto& [k, v] : config.items()) {
    if (v.is_number_integer()) f.setAttr("/model", k, v.get<int64_t>());
    else if (v.is_number()) f.setAttr("/model", k, v.get<double>());
    else if (v.is_boolean()) f.setAttr("/model", k, static_cast<int64_t>(v.get<bool>()));
    else f.setAttr("/model", k, v.get<std::string>());
  }
  f.setAttr("/model", "source", source);
  f.setAttr("/model", "format", format);
}
}  // namespace

void TraceWriter::writeModel(const ModelConfig& c, const std::string& source, const std::string& format) {
  writeModelGroup(m_file, configToJson(c), source, format);
  ProvenanceInputs in = m_opt.provenance;
  in.modelSource = source, in.modelFormat = format;
  if (in.commandLine.empty()) in.commandLine = "(not recorded)";
  writeProvenance(provenance(c, in));
}

void TraceWriter::writeModelFromProvenance(const nlohmann::json& record) {
  if (!record.contains("config") || !record.contains("model"))
    throw InputError(m_target + ": the provenance to write has no config or model");
  writeModelGroup(m_file, record["config"], record["model"].value("source", ""), record["model"].value("format", ""));
  writeProvenance(record);
}

void TraceWriter::writeInputs(const std::vector<int64_t>& tokens, const std::vector<std::string>& pieces) {
  m_file.writeInts("/inputs/tokens", {1, tokens.size()}, tokens.data());
  m_file.writeStrings("/inputs/token_strings", pieces);
  m_file.setAttr("/inputs/tokens", "axes", std::vector<std::string>{"batch", "pos"});
}

void TraceWriter::writeImage(const at::Tensor& pixels, int64_t imageBegin, int64_t imageEnd) {
  at::Tensor t = pixels.detach().to(at::kCPU, at::kFloat).contiguous();
  if (t.dim() != 4) throw InputError("image pixels must be [batch, channel, y, x], got " + shapeString(t.sizes()));
  m_file.writeFloats("/inputs/image", shapeOf(t), t.data_ptr<float>());
  m_file.setAttr("/inputs/image", "axes", std::vector<std::string>{"batch", "channel", "y", "x"});
  m_file.setAttr("/inputs/image", "normalisation", std::string("CLIP mean/std (the tower's input)"));
  const int64_t span[2] = {imageBegin, imageEnd};
  m_file.writeInts("/inputs/image_span", {2}, span);
  m_bytes += static_cast<uint64_t>(t.numel()) * 4;
}

void TraceWriter::writeActivation(const std::string& hook, const at::Tensor& activation) {
  at::Tensor t = activation.detach().to(at::kCPU, at::kFloat).contiguous();
  auto shape = shapeOf(t);
  h5::DatasetOptions o;
  o.storage = m_opt.float16 ? h5::Storage::Float16 : h5::Storage::Float32;
  o.gzipLevel = m_opt.gzipLevel;
  if (isAttention(hook) && shape.size() == 4) {
    o.chunk = {1, 1, shape[2], shape[3]};  // one head per chunk: read a head without the others
  } else if (m_opt.gzipLevel > 0 && !shape.empty()) {
    o.chunk = shape;
    o.chunk[0] = 1;
  }
  const std::string path = "/activations/" + hook;
  m_file.writeFloats(path, shape, t.data_ptr<float>(), o);
  m_file.setAttr(path, "axes", hookAxes(hook));
  m_bytes += t.numel() * (m_opt.float16 ? 2 : 4);
}

void TraceWriter::beginActivation(const std::string& hook, const std::vector<uint64_t>& shape, const std::vector<std::string>& axes,
                                  const std::map<std::string, int64_t>& intAttrs, const std::map<std::string, std::string>& textAttrs) {
  h5::DatasetOptions o;
  o.storage = m_opt.float16 ? h5::Storage::Float16 : h5::Storage::Float32;
  o.gzipLevel = m_opt.gzipLevel;
  o.chunk = shape;  // one row block of one head per chunk (at most 64 rows)
  for (size_t i = 0; i + 2 < o.chunk.size(); ++i) o.chunk[i] = 1;
  if (o.chunk.size() >= 2) o.chunk[o.chunk.size() - 2] = std::min<uint64_t>(o.chunk[o.chunk.size() - 2], 64);
  const std::string path = "/activations/" + hook;
  m_file.createFloats(path, shape, o);
  m_file.setAttr(path, "axes", axes);
  for (const auto& [k, v] : intAttrs) m_file.setAttr(path, k, v);
  for (const auto& [k, v] : textAttrs) m_file.setAttr(path, k, v);
}

void TraceWriter::writeActivationBlock(const std::string& hook, const std::vector<uint64_t>& start, const at::Tensor& block) {
  const at::Tensor t = block.detach().to(at::kCPU, at::kFloat).contiguous();
  m_file.writeFloatsAt("/activations/" + hook, start, shapeOf(t), t.data_ptr<float>());
  m_bytes += t.numel() * (m_opt.float16 ? 2 : 4);
}

void TraceWriter::writeProbe(const std::string& name, const nlohmann::json& params, const std::map<std::string, at::Tensor>& arrays) {
  const std::string g = "/probes/" + name;
  m_file.createGroup(g);
  m_file.setAttr(g, "schema", std::string("headlab.probe"));
  m_file.setAttr(g, "schema_version", kTraceSchemaVersion);
  for (auto& [k, v] : params.items()) {
    if (v.is_number_integer()) m_file.setAttr(g, k, v.get<int64_t>());
    else if (v.is_number()) m_file.setAttr(g, k, v.get<double>());
    else if (v.is_string()) m_file.setAttr(g, k, v.get<std::string>());
    else m_file.setAttr(g, k, v.dump());
  }
  for (const auto& [k, t] : arrays) {
    at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
    m_file.writeFloats(g + "/" + k, shapeOf(c), c.data_ptr<float>());
  }
}

void TraceWriter::writeInterventions(const nlohmann::json& interventions) {
  m_file.writeString("/interventions", interventions.dump());
}

void TraceWriter::writeProvenance(const nlohmann::json& record) {
  m_file.setAttr("/", "provenance", record.dump());
  m_provenance = record;
}

void TraceWriter::noteAttention(const std::string& used) {
  if (m_provenance.is_null() || used.empty()) return;
  m_provenance["attention"] = used;
  writeProvenance(m_provenance);
}

void TraceWriter::commit() {
  try {
    m_file.flush();
  } catch (const IoError&) {
    throw IoError(m_target + ": write failed (disk full?); nothing was written there");
  }
  m_file.close();
  if (fs::exists(m_target) && !m_opt.force) {
    fs::remove(m_temp);
    throw IoError(m_target + ": appeared while writing; pass --force to overwrite");
  }
  std::error_code ec;
  fs::rename(m_temp, m_target, ec);
  if (ec) {
    fs::remove(m_temp);
    throw IoError(m_target + ": cannot move the finished trace into place: " + ec.message());
  }
  m_committed = true;
  if (!m_provenance.is_null()) writeProvenanceSidecar(m_target, m_provenance);
}

namespace {
// The strings of a trace, length-prefixed: what the isolated child sends back to the reader.
void putString(std::string& out, const std::string& s) {
  const uint64_t n = s.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += s;
}
void putStrings(std::string& out, const std::vector<std::string>& v) {
  putString(out, std::to_string(v.size()));
  for (const auto& s : v) putString(out, s);
}
struct StringReader {
  const std::string& data;
  size_t pos = 0;
  std::string next() {
    uint64_t n = 0;
    if (data.size() - pos < sizeof n) throw IoError("trace strings: truncated reply");
    std::memcpy(&n, data.data() + pos, sizeof n);
    pos += sizeof n;
    if (data.size() - pos < n) throw IoError("trace strings: truncated reply");
    std::string s = data.substr(pos, n);
    pos += n;
    return s;
  }
  std::vector<std::string> list() {
    const size_t n = std::stoull(next());
    std::vector<std::string> v;
    for (size_t i = 0; i < n; ++i) v.push_back(next());
    return v;
  }
};

// Reads every element of a dataset once, a [1, 1, ...] slice at a time (one attention head per
// read): libhdf5 walks every chunk and its index, and nothing large is held.
void touchAllData(const h5::File& f, const std::string& obj) {
  const std::vector<uint64_t> s = f.shape(obj);
  f.checkedElements(obj, s, sizeof(float));
  if (s.size() < 2) {
    f.readFloats(obj);
    return;
  }
  std::vector<uint64_t> start(s.size(), 0), count = s;
  count[0] = count[1] = 1;
  for (uint64_t i = 0; i < s[0]; ++i)
    for (uint64_t j = 0; j < s[1]; ++j) {
      start[0] = i, start[1] = j;
      f.readFloats(obj, start, count);
    }
}

// Runs in the child: everything the reader needs from libhdf5's metadata and strings, and one
// read of all the data, so that a file that crashes or hangs libhdf5 does it here. Sends back the
// schema, schema_version, each activation's name and axes, and the tokens and their strings.
std::string inspectTrace(const std::string& path) {
  h5::File f = h5::File::open(path);
  std::string out;
  const bool schema = f.hasAttr("/", "schema");
  putString(out, schema ? f.attrString("/", "schema") : std::string());
  if (!schema || f.attrString("/", "schema") != kTraceSchema) return out;
  putString(out, std::to_string(f.attrInt("/", "schema_version")));
  std::vector<std::string> names = f.exists("/activations") ? f.children("/activations") : std::vector<std::string>{};
  putString(out, std::to_string(names.size()));
  for (const auto& name : names) {
    putString(out, name);
    const std::string obj = "/activations/" + name;
    putStrings(out, f.hasAttr(obj, "axes") ? f.attrStrings(obj, "axes") : std::vector<std::string>{});
    touchAllData(f, obj);
  }
  const bool tokens = f.exists("/inputs/tokens");
  putString(out, tokens ? "1" : "0");
  if (tokens) {
    std::vector<std::string> ids;
    for (int64_t id : f.readInts("/inputs/tokens")) ids.push_back(std::to_string(id));
    putStrings(out, ids);
  }
  const bool strings = f.exists("/inputs/token_strings");
  putString(out, strings ? "1" : "0");
  if (strings) putStrings(out, f.readStrings("/inputs/token_strings"));
  return out;
}
}  // namespace

TraceReader::TraceReader(const std::string& path) : m_file(readStringsThenOpen(path)) {
  if (schemaVersion() > kTraceSchemaVersion)
    throw IoError(path + ": trace schema_version " + std::to_string(schemaVersion()) + " is newer than this HeadLab reads (" +
                  std::to_string(kTraceSchemaVersion) + ")");
}

h5::File TraceReader::readStringsThenOpen(const std::string& path) {
  // A real trace's strings take milliseconds; a file that makes libhdf5 loop gets 10 s
  // (HEADLAB_TRACE_STRINGS_TIMEOUT_S overrides it: the fuzzer uses 1 s).
  const char* limit = std::getenv("HEADLAB_TRACE_STRINGS_TIMEOUT_S");
  const int seconds = limit && std::atoi(limit) > 0 ? std::atoi(limit) : 10;
  IsolatedResult strings = runIsolated([&path] { return inspectTrace(path); }, seconds);
  if (!strings.ok && strings.threw) throw IoError(strings.failure);
  if (!strings.ok)
    throw IoError(path + ": corrupt HDF5 file: reading it crashed libhdf5 in a child process (" + strings.failure + ")");
  StringReader in{strings.output};
  if (in.next() != kTraceSchema) throw IoError(path + ": not a HeadLab trace (root attribute schema != \"headlab.trace\")");
  m_schemaVersion = std::stoll(in.next());
  const size_t activations = std::stoull(in.next());
  for (size_t i = 0; i < activations; ++i) {
    std::string name = in.next();
    m_activations.push_back(name);
    m_axes[name] = in.list();
  }
  m_hasTokens = in.next() == "1";
  if (m_hasTokens)
    for (const auto& id : in.list()) m_tokens.push_back(std::stoll(id));
  m_hasTokenStrings = in.next() == "1";
  if (m_hasTokenStrings) m_tokenStrings = in.list();
  return h5::File::open(path);
}

int64_t TraceReader::schemaVersion() const { return m_schemaVersion; }

std::vector<std::string> TraceReader::activations() const { return m_activations; }

at::Tensor TraceReader::activation(const std::string& hook) const {
  const std::string p = "/activations/" + hook;
  auto s = m_file.shape(p);
  auto v = m_file.readFloats(p);
  std::vector<int64_t> shape(s.begin(), s.end());
  return at::from_blob(v.data(), shape, at::kFloat).clone();
}

at::Tensor TraceReader::headPattern(const std::string& hook, int64_t batch, int64_t head) const {
  const std::string p = "/activations/" + hook;
  auto s = m_file.shape(p);
  if (s.size() != 4) throw IoError(m_file.path() + ": " + p + " is not [batch, head, q_pos, k_pos]");
  if (batch < 0 || head < 0 || static_cast<uint64_t>(batch) >= s[0] || static_cast<uint64_t>(head) >= s[1])
    throw InputError("head " + std::to_string(head) + " (batch " + std::to_string(batch) + ") out of range in " + p);
  auto v = m_file.readFloats(p, {static_cast<uint64_t>(batch), static_cast<uint64_t>(head), 0, 0}, {1, 1, s[2], s[3]});
  return at::from_blob(v.data(), {static_cast<int64_t>(s[2]), static_cast<int64_t>(s[3])}, at::kFloat).clone();
}

std::vector<std::string> TraceReader::axes(const std::string& hook) const {
  auto it = m_axes.find(hook);
  if (it == m_axes.end()) throw IoError(m_file.path() + ": /activations/" + hook + ": no such activation");
  if (it->second.empty()) throw IoError(m_file.path() + ": /activations/" + hook + ": no attribute 'axes'");
  return it->second;
}
std::vector<int64_t> TraceReader::tokens() const {
  if (!m_hasTokens) throw IoError(m_file.path() + ": /inputs/tokens: no such dataset");
  return m_tokens;
}
std::vector<std::string> TraceReader::tokenStrings() const {
  if (!m_hasTokenStrings) throw IoError(m_file.path() + ": /inputs/token_strings: no such dataset");
  return m_tokenStrings;
}

uint64_t estimateCaptureBytes(const HookedTransformer& model, const std::vector<std::string>& hooks, int64_t pos) {
  return estimateCaptureBytes(model, CaptureSpec{hooks, {}, {}}, pos);
}

AttentionSelection resolveSelection(const AttentionSelection& s, int64_t pos, int64_t nHeads) {
  AttentionSelection r = s;
  if (r.rowEnd < 0) r.rowEnd = pos;
  if (r.colEnd < 0) r.colEnd = pos;
  const auto check = [pos](int64_t a, int64_t b, const std::string& what) {
    if (a < 0 || b > pos || a >= b)
      throw InputError(what + " " + std::to_string(a) + ":" + std::to_string(b) + " is empty or outside the prompt's " + std::to_string(pos) +
                       " positions [0, " + std::to_string(pos) + ")");
  };
  check(r.rowBegin, r.rowEnd, "--rows");
  check(r.colBegin, r.colEnd, "--cols");
  if (r.heads.empty())
    for (int64_t h = 0; h < nHeads; ++h) r.heads.push_back(h);
  for (int64_t h : r.heads)
    if (h < 0 || h >= nHeads) throw InputError("--heads: head " + std::to_string(h) + " out of range [0, " + std::to_string(nHeads) + ")");
  return r;
}

uint64_t estimateTiledCaptureBytes(const std::vector<std::string>& hooks, const AttentionSelection& r, int64_t) {
  return static_cast<uint64_t>(hooks.size()) * r.heads.size() * static_cast<uint64_t>(r.rowEnd - r.rowBegin) *
         static_cast<uint64_t>(r.colEnd - r.colBegin) * 4;
}

void captureAttentionTiles(HookedTransformer& model, const std::vector<int64_t>& tokens, const std::vector<std::string>& hooks,
                           const AttentionSelection& selection, TraceWriter& writer, const Progress& progress, const at::Tensor& embeds) {
  c10::InferenceMode guard;
  const int64_t T = static_cast<int64_t>(tokens.size());
  const AttentionSelection r = resolveSelection(selection, T, model.config().n_heads);
  struct Target {
    std::string hook;
    int layer;
    bool scores;
  };
  std::vector<Target> targets;
  AttentionTilesOptions options;
  for (const auto& h : hooks) {
    int layer = -1;
    char kind[32] = {0};
    if (std::sscanf(h.c_str(), "blocks.%d.attn.hook_%31s", &layer, kind) != 2 || (std::string(kind) != "pattern" && std::string(kind) != "attn_scores"))
      throw InputError("--heads/--rows/--cols select attention tiles: '" + h + "' is not a blocks.L.attn.hook_pattern or hook_attn_scores hook");
    targets.push_back({h, layer, std::string(kind) == "attn_scores"});
    options.layers.push_back(layer);
  }
  options.statsFromForward = false;  // the statistics of the selected rows only
  const AttentionTiles tiles = embeds.defined() ? AttentionTiles::fromEmbeddings(model, embeds, options)
                                                : AttentionTiles(model, at::tensor(tokens, at::kLong).unsqueeze(0), options);
  const int64_t rows = r.rowEnd - r.rowBegin, cols = r.colEnd - r.colBegin, H = static_cast<int64_t>(r.heads.size());
  // Row blocks of about 16 MB of float32, one head at a time.
  const int64_t block = std::max<int64_t>(1, (int64_t(16) << 20) / (cols * 4));
  const int64_t steps = static_cast<int64_t>(targets.size()) * H * ((rows + block - 1) / block);
  int64_t done = 0;
  for (const auto& t : targets) {
    writer.beginActivation(t.hook, {1, static_cast<uint64_t>(H), static_cast<uint64_t>(rows), static_cast<uint64_t>(cols)},
                           {"batch", "head", "q_pos", "k_pos"}, {{"q_start", r.rowBegin}, {"k_start", r.colBegin}},
                           {{"heads", nlohmann::json(r.heads).dump()}});
    for (int64_t i = 0; i < H; ++i)
      for (int64_t a = r.rowBegin; a < r.rowEnd; a += block) {
        const int64_t b = std::min(r.rowEnd, a + block);
        const at::Tensor tile = t.scores ? tiles.scores(t.layer, {r.heads[i]}, a, b, r.colBegin, r.colEnd)
                                         : tiles.pattern(t.layer, {r.heads[i]}, a, b, r.colBegin, r.colEnd);
        writer.writeActivationBlock(t.hook, {0, static_cast<uint64_t>(i), static_cast<uint64_t>(a - r.rowBegin), 0}, tile.unsqueeze(0));
        ++done;
        if (progress && !progress(static_cast<double>(done) / steps, t.hook + " head " + std::to_string(r.heads[i]) + " rows " + std::to_string(b) + "/" +
                                                                           std::to_string(r.rowEnd)))
          throw CancelledError();
      }
  }
}

void captureToTrace(HookedTransformer& model, const std::vector<int64_t>& tokens, const std::vector<std::string>& hooks,
                    TraceWriter& writer, const Progress& progress, const at::Tensor& embeds) {
  c10::InferenceMode guard;
  std::vector<HookHandle> handles;
  int done = 0;
  const int total = static_cast<int>(hooks.size());
  for (const auto& name : hooks) {
    handles.push_back(model.hooks().add(name, [&, name](at::Tensor& t, const HookContext&) {
      writer.writeActivation(name, t);  // streamed: nothing is kept after this returns
      ++done;
      if (progress && !progress(static_cast<double>(done) / total, std::to_string(done) + "/" + std::to_string(total))) throw CancelledError();
    }));
  }
  if (embeds.defined()) {
    if (embeds.dim() != 3 || embeds.size(1) != static_cast<int64_t>(tokens.size()))
      throw InputError("capture: embeddings " + shapeString(embeds.sizes()) + " do not match " + std::to_string(tokens.size()) + " tokens");
    model.forwardFrom(0, embeds);
  } else {
    model.forward(at::tensor(tokens, at::kLong).unsqueeze(0));
  }
}

}  // namespace headlab
