// A thin RAII layer over the HDF5 C API: handles closed by destructors, HDF5's own error
// printing silenced, every failure an IoError naming the file and the object path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace headlab::h5 {

using hid = int64_t;  // hid_t

// Move-only owner of one HDF5 identifier.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid id) : m_id(id) {}
  Handle(Handle&& o) noexcept : m_id(o.m_id) { o.m_id = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { close(); }
  hid id() const { return m_id; }
  bool valid() const { return m_id >= 0; }
  void close();

 private:
  hid m_id = -1;
};

enum class Storage { Float32, Float16, Int64, Int32 };

struct DatasetOptions {
  Storage storage = Storage::Float32;
  std::vector<uint64_t> chunk;  // empty = contiguous
  int gzipLevel = 0;            // 0 = no compression (needs chunk)
};

class File {
 public:
  static File create(const std::string& path);  // truncates
  static File open(const std::string& path);    // read-only
  const std::string& path() const { return m_path; }
  hid id() const { return m_handle.id(); }
  void flush();
  void close() { m_handle.close(); }

  void createGroup(const std::string& path);  // creates missing parents
  bool exists(const std::string& path) const;
  std::vector<std::string> children(const std::string& group) const;

  // Attributes on any object ("/" for the root).
  void setAttr(const std::string& obj, const std::string& name, const std::string& value);
  void setAttr(const std::string& obj, const std::string& name, int64_t value);
  void setAttr(const std::string& obj, const std::string& name, double value);
  void setAttr(const std::string& obj, const std::string& name, const std::vector<std::string>& values);
  std::string attrString(const std::string& obj, const std::string& name) const;
  int64_t attrInt(const std::string& obj, const std::string& name) const;
  double attrDouble(const std::string& obj, const std::string& name) const;
  std::vector<std::string> attrStrings(const std::string& obj, const std::string& name) const;
  bool hasAttr(const std::string& obj, const std::string& name) const;

  // data holds prod(shape) elements of float (Float32/Float16 storage) or int64 (Int64).
  void writeFloats(const std::string& path, const std::vector<uint64_t>& shape, const float* data, const DatasetOptions& o = {});
  // A float dataset written later, hyperslab by hyperslab (writeFloatsAt): a stream that never holds
  // the whole array. Unwritten elements read as 0.
  void createFloats(const std::string& path, const std::vector<uint64_t>& shape, const DatasetOptions& o = {});
  void writeFloatsAt(const std::string& path, const std::vector<uint64_t>& start, const std::vector<uint64_t>& count, const float* data);
  void writeInts(const std::string& path, const std::vector<uint64_t>& shape, const int64_t* data);
  void writeStrings(const std::string& path, const std::vector<std::string>& values);
  void writeString(const std::string& path, const std::string& value);  // scalar string dataset

  std::vector<uint64_t> shape(const std::string& path) const;
  std::vector<float> readFloats(const std::string& path) const;  // any float storage, converted
  // One hyperslab: `start`/`count` per dimension.
  std::vector<float> readFloats(const std::string& path, const std::vector<uint64_t>& start, const std::vector<uint64_t>& count) const;
  std::vector<int64_t> readInts(const std::string& path) const;
  std::vector<std::string> readStrings(const std::string& path) const;
  std::string readString(const std::string& path) const;
  std::string storageOf(const std::string& path) const;  // "float32", "float16", "int64"
  std::vector<uint64_t> chunkOf(const std::string& path) const;

  // The element count of `dims`, refused (fail) when it overflows or when `elementBytes` each would
  // exceed what this file could hold even fully deflated (~1032:1): a corrupt dataspace must not
  // make us allocate terabytes.
  size_t checkedElements(const std::string& obj, const std::vector<uint64_t>& dims, size_t elementBytes) const;
 private:
  File(Handle h, std::string path) : m_handle(std::move(h)), m_path(std::move(path)) {}
  [[noreturn]] void fail(const std::string& obj, const std::string& what) const;
  Handle m_handle;
  std::string m_path;
};

}  // namespace headlab::h5
