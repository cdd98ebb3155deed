#include "headlab/core/tensor_store.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "headlab/core/errors.h"

namespace headlab {

MappedFile::MappedFile(const std::string& path) : m_path(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(path + ": not a regular file");
  }
  m_size = static_cast<uint64_t>(st.st_size);
  if (m_size > 0) {
    void* p = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw IoError(path + ": cannot map: " + std::strerror(errno));
    }
    m_data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (m_data) ::munmap(const_cast<uint8_t*>(m_data), m_size);
}

const char* toString(StoredDtype d) { return d ? d->name : "?"; }

uint64_t storedBytes(StoredDtype d, uint64_t numel, const std::string& where) {
  if (numel % d->blockElems != 0)
    throw WeightError(where + ": " + d->name + " tensor has " + std::to_string(numel) + " elements, not a multiple of " +
                      std::to_string(d->blockElems));
  const uint64_t blocks = numel / d->blockElems;
  if (blocks > std::numeric_limits<uint64_t>::max() / d->blockBytes) throw WeightError(where + ": tensor size overflows");
  return blocks * d->blockBytes;
}

void ByteReader::fail(const std::string& msg) const {
  throw IoError(m_file + ": " + msg + " at offset " + std::to_string(m_pos));
}

void ByteReader::need(uint64_t n, const char* what) {
  if (n > m_size - m_pos)
    throw IoError(m_file + ": truncated: reading " + what + " needs " + std::to_string(n) +
                  " bytes at offset " + std::to_string(m_pos) + ", file has " + std::to_string(m_size - m_pos) + " left");
}

template <typename T>
T ByteReader::read(const char* what) {
  need(sizeof(T), what);
  T v;
  std::memcpy(&v, m_data + m_pos, sizeof(T));
  m_pos += sizeof(T);
  return v;
}
template uint8_t ByteReader::read<uint8_t>(const char*);
template int8_t ByteReader::read<int8_t>(const char*);
template uint16_t ByteReader::read<uint16_t>(const char*);
template int16_t ByteReader::read<int16_t>(const char*);
template uint32_t ByteReader::read<uint32_t>(const char*);
template int32_t ByteReader::read<int32_t>(const char*);
template uint64_t ByteReader::read<uint64_t>(const char*);
template int64_t ByteReader::read<int64_t>(const char*);
template float ByteReader::read<float>(const char*);
template double ByteReader::read<double>(const char*);

std::string ByteReader::readString(uint64_t len, const char* what) {
  need(len, what);
  std::string s(reinterpret_cast<const char*>(m_data + m_pos), len);
  m_pos += len;
  return s;
}

void ByteReader::skip(uint64_t n, const char* what) {
  need(n, what);
  m_pos += n;
}

std::string shapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
std::string shapeString(at::IntArrayRef s) { return shapeString(std::vector<int64_t>(s.begin(), s.end())); }

void TensorStore::add(RawTensor t) {
  if (m_tensors.count(t.name)) throw WeightError(t.file + ": duplicate tensor '" + t.name + "'");
  std::string name = t.name;
  m_tensors.emplace(std::move(name), std::move(t));
}

std::string TensorStore::describe() const {
  if (m_files.empty()) return "model";
  std::string s = m_files.front()->path();
  if (m_files.size() > 1) s += " (+" + std::to_string(m_files.size() - 1) + " shards)";
  return s;
}

const RawTensor& TensorStore::raw(const std::string& name) const {
  auto it = m_tensors.find(name);
  if (it == m_tensors.end()) throw WeightError(describe() + ": missing tensor '" + name + "'");
  return it->second;
}

at::Tensor TensorStore::get(const std::string& name, const std::vector<int64_t>& expected) const {
  const RawTensor& t = raw(name);
  if (!expected.empty() && t.shape != expected)
    throw WeightError(t.file + ": tensor '" + name + "' has wrong shape; expected " + shapeString(expected) +
                      ", got " + shapeString(t.shape));
  int64_t numel = 1;
  for (int64_t d : t.shape) numel *= d;
  if (!t.dtype->toFloat)
    throw WeightError(t.file + ": tensor '" + name + "' has dtype " + toString(t.dtype) + ", expected a float type");
  // Stored as the target type already (bfloat16 loaded as bfloat16): one copy, no float32 detour.
  at::Tensor out = t.dtype->scalarType == m_dtype ? at::from_blob(const_cast<uint8_t*>(t.data), {numel}, m_dtype).clone()
                                                  : t.dtype->toFloat(t.data, numel);
  out = out.view(t.shape);
  if (m_device.type() != at::kCPU || out.scalar_type() != m_dtype) out = out.to(m_device, m_dtype);
  releasePages(t.data, t.nbytes);
  return out;
}

void TensorStore::releasePages(const uint8_t* data, uint64_t bytes) {
  // The file's pages that were read to make the copy count as this process's memory until released:
  // drop them (they are clean, read-only file pages; a second read faults them in again). Without
  // this, loading a 2.4 GB checkpoint peaked at its copy plus the whole mapped file.
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t begin = (reinterpret_cast<uint64_t>(data) + page - 1) / page * page;
  const uint64_t end = (reinterpret_cast<uint64_t>(data) + bytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

uint64_t TensorStore::loadedBytes(at::ScalarType dtype) const {
  uint64_t total = 0;
  for (const auto& [name, t] : m_tensors) {
    if (!t.dtype->toFloat) continue;
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    total += numel * at::elementSize(dtype);
  }
  return total;
}

at::Tensor TensorStore::getOptional(const std::string& name, const std::vector<int64_t>& expected) const {
  return has(name) ? get(name, expected) : at::Tensor();
}

}  // namespace headlab
