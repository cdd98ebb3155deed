// Tensors as stored in a checkpoint file: memory-mapped, validated, converted on request.
#pragma once
#include <ATen/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace headlab {

// A read-only memory map of a whole file. Move-only RAII around mmap/munmap.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws IoError
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return m_data; }
  uint64_t size() const { return m_size; }
  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
  const uint8_t* m_data = nullptr;
  uint64_t m_size = 0;
};

// One stored element type: its name (the same in safetensors and ggml), where it may appear, its
// block layout and how it becomes float32. A new type is one row of the table in dtypes.cpp plus
// its dequantiser; readers, sizes and messages all come from the table.
struct DtypeInfo {
  const char* name;        // "F32", "BF16", "Q8_0"
  bool inSafetensors;      // a safetensors header may declare it
  int ggmlId;              // GGUF tensor type id; -1: not in GGUF
  uint32_t blockElems;     // elements per block (1 for plain types)
  uint32_t blockBytes;     // bytes per block
  at::Tensor (*toFloat)(const uint8_t* data, int64_t numel);  // flat float32 copy; nullptr: not a float type
  at::ScalarType scalarType = at::ScalarType::Undefined;       // plain types: the torch type of the stored values
};
using StoredDtype = const DtypeInfo*;
// The table, in ggml id order.
const std::vector<DtypeInfo>& storedDtypes();
StoredDtype dtypeF32();
StoredDtype safetensorsDtype(const std::string& name);  // nullptr when the table has none
StoredDtype ggmlDtype(int64_t id);                      // nullptr when the table has none
// "F32, F16 or BF16" (the float types safetensors may hold) / "F32 (0), F16 (1), ..." (GGUF ids).
std::string safetensorsDtypeList();
std::string ggmlDtypeList();
const char* toString(StoredDtype d);
// Bytes for `numel` elements (Q8_0: blocks of 32 -> 34 bytes). Throws WeightError when numel is not
// a whole number of blocks or on overflow.
uint64_t storedBytes(StoredDtype d, uint64_t numel, const std::string& where);

struct RawTensor {
  std::string name;
  StoredDtype dtype = dtypeF32();
  std::vector<int64_t> shape;  // PyTorch order (outermost first)
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  std::string file;
};

// Bounds-checked little-endian reader over a byte range; every error names the file and offset.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, uint64_t size, std::string file) : m_data(data), m_size(size), m_file(std::move(file)) {}
  template <typename T>
  T read(const char* what);
  std::string readString(uint64_t len, const char* what);
  void skip(uint64_t n, const char* what);
  uint64_t offset() const { return m_pos; }
  uint64_t remaining() const { return m_size - m_pos; }
  void seek(uint64_t pos) { m_pos = pos; }
  const std::string& file() const { return m_file; }
  [[noreturn]] void fail(const std::string& msg) const;

 private:
  void need(uint64_t n, const char* what);
  const uint8_t* m_data;
  uint64_t m_size;
  uint64_t m_pos = 0;
  std::string m_file;
};

class TensorStore {
 public:
  void addFile(std::shared_ptr<MappedFile> f) { m_files.push_back(std::move(f)); }
  // Throws WeightError on a duplicate name.
  void add(RawTensor t);
  bool has(const std::string& name) const { return m_tensors.count(name) > 0; }
  const RawTensor& raw(const std::string& name) const;  // throws WeightError "missing tensor"
  // A copy of a tensor on the target device in the target dtype (default: CPU float32), checked
  // against `expectedShape` (empty = any). Throws WeightError
  // "file: tensor 'x' has wrong shape; expected [a, b], got [c, d]".
  at::Tensor get(const std::string& name, const std::vector<int64_t>& expectedShape = {}) const;
  // Where get() puts tensors: each is converted as it is read, so loading peaks at the final size
  // plus one float32 tensor instead of the whole model in float32 first.
  void setTarget(at::Device device, at::ScalarType dtype) { m_device = device, m_dtype = dtype; }
  // Bytes every tensor of the store takes once loaded as `dtype` (float tensors only).
  uint64_t loadedBytes(at::ScalarType dtype) const;
  at::Tensor getOptional(const std::string& name, const std::vector<int64_t>& expectedShape = {}) const;
  const std::map<std::string, RawTensor>& tensors() const { return m_tensors; }
  std::string describe() const;  // the file name(s), for messages

 private:
  static void releasePages(const uint8_t* data, uint64_t bytes);  // madvise(DONTNEED) on the whole pages inside
  std::vector<std::shared_ptr<MappedFile>> m_files;
  std::map<std::string, RawTensor> m_tensors;
  at::Device m_device = at::kCPU;
  at::ScalarType m_dtype = at::kFloat;
};

std::string shapeString(const std::vector<int64_t>& s);
std::string shapeString(at::IntArrayRef s);

}  // namespace headlab
