#include <limits>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"

namespace headlab {

namespace {
constexpr uint32_t kV1Magic = 0x616b3432;

void validateHeader(const Llama2cHeader& h, const std::string& path) {
  auto bad = [&](const char* what, int64_t v) {
    throw IoError(path + ": llama2.c header field " + what + " = " + std::to_string(v) + " is invalid");
  };
  if (h.dim <= 0 || h.dim > 65536) bad("dim", h.dim);
  if (h.hidden_dim <= 0 || h.hidden_dim > 1 << 20) bad("hidden_dim", h.hidden_dim);
  if (h.n_layers <= 0 || h.n_layers > 1024) bad("n_layers", h.n_layers);
  if (h.n_heads <= 0 || h.dim % h.n_heads != 0) bad("n_heads", h.n_heads);
  if (h.n_kv_heads <= 0 || h.n_heads % h.n_kv_heads != 0) bad("n_kv_heads", h.n_kv_heads);
  if (h.vocab_size <= 0 || h.vocab_size > 1 << 24) bad("vocab_size", h.vocab_size);
  if (h.seq_len <= 0 || h.seq_len > 1 << 24) bad("seq_len", h.seq_len);
}

// Lays out the f32 arrays named in `order` one after another from `offset`.
struct Layout {
  const Llama2cHeader& h;
  int64_t kvDim() const { return int64_t(h.n_kv_heads) * (h.dim / h.n_heads); }
  std::vector<int64_t> shapeOf(const std::string& key) const {
    const int64_t D = h.dim, F = h.hidden_dim, V = h.vocab_size;
    if (key == "token_embd" || key == "output") return {V, D};
    if (key == "attn_norm" || key == "ffn_norm" || key == "output_norm") return {D};
    if (key == "attn_q" || key == "attn_output") return {D, D};
    if (key == "attn_k" || key == "attn_v") return {kvDim(), D};
    if (key == "ffn_gate" || key == "ffn_up") return {F, D};
    if (key == "ffn_down") return {D, F};
    return {};
  }
};

uint64_t numelOf(const std::vector<int64_t>& s) {
  uint64_t n = 1;
  for (auto d : s) n *= static_cast<uint64_t>(d);
  return n;
}
// The header, legacy (7 int32) or v1 (magic, version, 7 int32, shared flag, padded to 256 bytes).
// Returns the offset of the first tensor.
uint64_t readHeader(ByteReader& r, Llama2cHeader& h, const std::string& path) {
  uint32_t first = r.read<uint32_t>("magic or dim");
  auto readParams = [&] {
    h.dim = r.read<int32_t>("dim");
    h.hidden_dim = r.read<int32_t>("hidden_dim");
    h.n_layers = r.read<int32_t>("n_layers");
    h.n_heads = r.read<int32_t>("n_heads");
    h.n_kv_heads = r.read<int32_t>("n_kv_heads");
    h.vocab_size = r.read<int32_t>("vocab_size");
    h.seq_len = r.read<int32_t>("seq_len");
  };
  uint64_t offset = 0;
  if (first == kV1Magic) {
    int32_t version = r.read<int32_t>("version");
    if (version != 1) throw IoError(path + ": llama2.c version " + std::to_string(version) + " unsupported (expected 1)");
    h.version = 1;
    readParams();
    h.shared_classifier = r.read<uint8_t>("shared_classifier") != 0;
    offset = 256;
  } else {
    r.seek(0);
    readParams();
    h.shared_classifier = h.vocab_size > 0;
    // A negative vocab_size marks an unshared classifier; INT_MIN has no positive counterpart.
    if (h.vocab_size == std::numeric_limits<int32_t>::min())
      throw IoError(path + ": llama2.c header field vocab_size = " + std::to_string(h.vocab_size) + " is invalid");
    if (h.vocab_size < 0) h.vocab_size = -h.vocab_size;
    offset = 7 * 4;
  }
  validateHeader(h, path);
  return offset;
}

// The tensors in file order: (key, per layer). Legacy files hold RoPE tables after the norms.
std::vector<std::pair<std::string, bool>> tensorOrder(const Llama2cHeader& h) {
  std::vector<std::pair<std::string, bool>> order;
  if (h.version == 1) {
    order = {{"attn_norm", true}, {"ffn_norm", true}, {"output_norm", false}, {"token_embd", false},
             {"attn_q", true}, {"attn_k", true}, {"attn_v", true}, {"attn_output", true},
             {"ffn_gate", true}, {"ffn_down", true}, {"ffn_up", true}};
  } else {
    order = {{"token_embd", false}, {"attn_norm", true}, {"attn_q", true}, {"attn_k", true},
             {"attn_v", true}, {"attn_output", true}, {"ffn_norm", true}, {"ffn_gate", true},
             {"ffn_down", true}, {"ffn_up", true}, {"output_norm", false}, {"rope_tables", false}};
  }
  if (!h.shared_classifier) order.emplace_back("output", false);
  return order;
}
}  // namespace

Llama2cFile readLlama2c(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  ByteReader r(file->data(), file->size(), path);
  Llama2cFile out;
  Llama2cHeader& h = out.header;
  uint64_t offset = readHeader(r, h, path);
  const int64_t L = h.n_layers, headDim = h.dim / h.n_heads;
  Layout layout{h};
  const auto order = tensorOrder(h);

  // Check the total size against the file before any tensor is described.
  uint64_t total = offset;
  for (auto& [key, perLayer] : order) {
    uint64_t n = key == "rope_tables" ? uint64_t(h.seq_len) * headDim : numelOf(layout.shapeOf(key));
    total += n * 4 * (perLayer ? L : 1);
  }
  if (total > file->size())
    throw IoError(path + ": truncated llama2.c checkpoint: header promises " + std::to_string(total) +
                  " bytes, file has " + std::to_string(file->size()));
  if (h.version == 0 && total != file->size())
    throw IoError(path + ": llama2.c legacy checkpoint size " + std::to_string(file->size()) +
                  " does not match its header (expected " + std::to_string(total) + " bytes)");

  for (auto& [key, perLayer] : order) {
    if (key == "rope_tables") {
      offset += uint64_t(h.seq_len) * headDim * 4;
      continue;
    }
    auto shape = layout.shapeOf(key);
    uint64_t bytes = numelOf(shape) * 4;
    for (int64_t l = 0; l < (perLayer ? L : 1); ++l) {
      RawTensor t;
      t.name = perLayer ? "blk." + std::to_string(l) + "." + key + ".weight" : key + ".weight";
      t.file = path;
      t.dtype = dtypeF32();
      t.shape = shape;
      t.data = file->data() + offset;
      t.nbytes = bytes;
      offset += bytes;
      out.tensors.add(std::move(t));
    }
  }
  out.tensors.addFile(std::move(file));
  return out;
}

}  // namespace headlab
