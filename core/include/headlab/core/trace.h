// HDF5 traces (PRODUCT.md §7, docs/TRACE_FORMAT.md): self-describing, streamed, atomic.
#pragma once
#include <ATen/ATen.h>

#include <functional>

#include "headlab/core/progress.h"
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "headlab/core/h5.h"
#include "headlab/core/provenance.h"

namespace headlab {

struct ModelConfig;
class HookedTransformer;

constexpr const char* kTraceSchema = "headlab.trace";
constexpr int64_t kTraceSchemaVersion = 1;

struct TraceOptions {
  bool force = false;     // overwrite an existing target
  int gzipLevel = 0;      // 0 = uncompressed
  bool float16 = false;   // store activations as IEEE half
  // What writeModel records as the file's provenance (its model source and format are filled in there).
  ProvenanceInputs provenance;
};

// Writes into a temporary file beside the target and renames it into place on commit().
// Destroyed without commit() (an exception, a cancel), it deletes the temporary file: the target
// is never half-written and an existing file there is untouched.
class TraceWriter {
 public:
  TraceWriter(std::string target, TraceOptions options = {});  // throws IoError when target exists and !force
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // The model's config under /model, and the file's provenance (options.provenance, the model's files hashed).
  void writeModel(const ModelConfig& c, const std::string& source, const std::string& format);
  // The same from a recorded provenance (its "config" and "model"): a file made from other files
  // (headlab-cli merge) without the model at hand.
  void writeModelFromProvenance(const nlohmann::json& record);
  const nlohmann::json& provenanceRecord() const { return m_provenance; }
  void writeInputs(const std::vector<int64_t>& tokens, const std::vector<std::string>& pieces);
  // A vision-language prompt's image: /inputs/image, the pixels as the tower saw them
  // ([batch, channel, y, x], CLIP-normalised), and /inputs/image_span = [begin, end), the
  // positions holding its tokens.
  void writeImage(const at::Tensor& pixels, int64_t imageBegin, int64_t imageEnd);
  // [batch, ...] activation named by its hook; attention is chunked one head per chunk.
  void writeActivation(const std::string& hook, const at::Tensor& activation);
  // An activation written block by block (writeActivationBlock) instead of whole: [batch, ...] of
  // `shape`, with integer attributes `intAttrs` and string attributes `textAttrs` beside "axes".
  void beginActivation(const std::string& hook, const std::vector<uint64_t>& shape, const std::vector<std::string>& axes,
                       const std::map<std::string, int64_t>& intAttrs = {}, const std::map<std::string, std::string>& textAttrs = {});
  void writeActivationBlock(const std::string& hook, const std::vector<uint64_t>& start, const at::Tensor& block);
  void writeProbe(const std::string& name, const nlohmann::json& params, const std::map<std::string, at::Tensor>& arrays);
  void writeInterventions(const nlohmann::json& interventions);
  // The provenance record (headlab/core/provenance.h) as the root attribute "provenance" (JSON), and
  // as the sidecar <path>.provenance.json written on commit().
  void writeProvenance(const nlohmann::json& record);
  // Records in the provenance the attention implementation the layers ran ("explicit",
  // "blockwise" or "explicit+blockwise": HookedTransformer::attentionUsed()) in place of the policy.
  void noteAttention(const std::string& used);
  void commit();
  const std::string& tempPath() const { return m_temp; }
  uint64_t bytesWritten() const { return m_bytes; }

 private:
  std::string m_target, m_temp;
  TraceOptions m_opt;
  h5::File m_file;
  bool m_committed = false;
  nlohmann::json m_provenance;
  uint64_t m_bytes = 0;
};

class TraceReader {
 public:
  // Throws IoError if not a HeadLab trace. The file is first read once, whole, in a child process
  // (metadata, strings and data): libhdf5 1.10 crashes or loops on some corrupt files (H5HG_read,
  // object headers), and such a file must cost an error, not the program. The strings, tokens and
  // names come from that read; the data is read again, here, on request.
  explicit TraceReader(const std::string& path);
  h5::File& file() { return m_file; }
  int64_t schemaVersion() const;
  std::vector<std::string> activations() const;
  at::Tensor activation(const std::string& hook) const;  // float32
  // One head of an attention activation without reading the others: [q_pos, k_pos].
  at::Tensor headPattern(const std::string& hook, int64_t batch, int64_t head) const;
  std::vector<std::string> axes(const std::string& hook) const;
  std::vector<int64_t> tokens() const;
  std::vector<std::string> tokenStrings() const;

 private:
  // Reads the strings (isolated), then opens the file for the numeric reads.
  h5::File readStringsThenOpen(const std::string& path);
  // Declared before m_file: filled by readStringsThenOpen while m_file is initialised.
  std::map<std::string, std::vector<std::string>> m_axes;  // per activation
  std::vector<std::string> m_activations;
  int64_t m_schemaVersion = 0;
  std::vector<int64_t> m_tokens;
  bool m_hasTokens = false;
  std::vector<std::string> m_tokenStrings;
  bool m_hasTokenStrings = false;
  h5::File m_file;
};

// Bytes a capture of `hooks` on a `pos`-token prompt stores (float32, batch 1).
uint64_t estimateCaptureBytes(const HookedTransformer& model, const std::vector<std::string>& hooks, int64_t pos);

// Which heads, query rows and key columns of an attention hook a capture keeps (capture --heads
// --rows --cols). Empty heads: every head; an end < 0: to the prompt's end.
struct AttentionSelection {
  std::vector<int64_t> heads;
  int64_t rowBegin = 0, rowEnd = -1, colBegin = 0, colEnd = -1;
};
// The selection with its ends resolved against a `pos`-token prompt; InputError names a range
// outside it or a head out of range.
AttentionSelection resolveSelection(const AttentionSelection& s, int64_t pos, int64_t nHeads);
// Bytes a tiled capture stores (float32): heads x rows x columns per hook.
uint64_t estimateTiledCaptureBytes(const std::vector<std::string>& hooks, const AttentionSelection& resolved, int64_t nHeads);

// The selected tiles of pattern and score hooks (blocks.L.attn.hook_pattern / hook_attn_scores)
// without any [T, T] matrix: each layer's input is kept by one pass (headlab/core/attention_tiles.h),
// the tiles are computed on demand and written block by block into [1, heads, rows, cols] datasets
// whose attributes say which heads ("heads", JSON) and where the rows and columns start
// ("q_start", "k_start"). Any other hook is refused (InputError). Edits installed on the
// model apply to every layer's input; an edit of the captured layer's own pattern is not seen.
void captureAttentionTiles(HookedTransformer& model, const std::vector<int64_t>& tokens, const std::vector<std::string>& hooks,
                           const AttentionSelection& selection, TraceWriter& writer, const Progress& progress = {},
                           const at::Tensor& embeds = {});

// One forward that streams each listed hook's activation into the writer as it is produced.
// `progress(done, total)` returning false cancels (CancelledError; the writer then discards).
// `embeds` ([1, pos, d_model], optional): layer 0's input instead of embedding `tokens` (an image prompt).
void captureToTrace(HookedTransformer& model, const std::vector<int64_t>& tokens, const std::vector<std::string>& hooks,
                    TraceWriter& writer, const Progress& progress = {}, const at::Tensor& embeds = {});

}  // namespace headlab
