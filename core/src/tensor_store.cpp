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

const char* toString(StoredDtype d) {
  switch (d) {
    case StoredDtype::F32: return "F32";
    case StoredDtype::F16: return "F16";
    case StoredDtype::BF16: return "BF16";
    case StoredDtype::Q8_0: return "Q8_0";
    case StoredDtype::I32: return "I32";
    case StoredDtype::I64: return "I64";
  }
  return "?";
}

uint64_t storedBytes(StoredDtype d, uint64_t numel, const std::string& where) {
  uint64_t per = 4;
  switch (d) {
    case StoredDtype::F32: case StoredDtype::I32: per = 4; break;
    case StoredDtype::F16: case StoredDtype::BF16: per = 2; break;
    case StoredDtype::I64: per = 8; break;
    case StoredDtype::Q8_0:
      if (numel % 32 != 0) throw WeightError(where + ": Q8_0 tensor has " + std::to_string(numel) + " elements, not a multiple of 32");
      return numel / 32 * 34;
  }
  if (numel > std::numeric_limits<uint64_t>::max() / per) throw WeightError(where + ": tensor size overflows");
  return numel * per;
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

namespace {
float halfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) mant <<= 1, --exp;
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

at::Tensor dequantQ8_0(const uint8_t* p, int64_t numel) {
  at::Tensor out = at::empty({numel}, at::kFloat);
  float* o = out.data_ptr<float>();
  for (int64_t b = 0; b < numel / 32; ++b) {
    const uint8_t* block = p + b * 34;
    uint16_t hs;
    std::memcpy(&hs, block, 2);
    float scale = halfToFloat(hs);
    const int8_t* q = reinterpret_cast<const int8_t*>(block + 2);
    for (int i = 0; i < 32; ++i) o[b * 32 + i] = scale * static_cast<float>(q[i]);
  }
  return out;
}
}  // namespace

at::Tensor TensorStore::get(const std::string& name, const std::vector<int64_t>& expected) const {
  const RawTensor& t = raw(name);
  if (!expected.empty() && t.shape != expected)
    throw WeightError(t.file + ": tensor '" + name + "' has wrong shape; expected " + shapeString(expected) +
                      ", got " + shapeString(t.shape));
  int64_t numel = 1;
  for (int64_t d : t.shape) numel *= d;
  void* ptr = const_cast<uint8_t*>(t.data);
  at::Tensor out;
  switch (t.dtype) {
    case StoredDtype::F32: out = at::from_blob(ptr, {numel}, at::kFloat).clone(); break;
    case StoredDtype::F16: out = at::from_blob(ptr, {numel}, at::kHalf).to(at::kFloat); break;
    case StoredDtype::BF16: out = at::from_blob(ptr, {numel}, at::kBFloat16).to(at::kFloat); break;
    case StoredDtype::Q8_0: out = dequantQ8_0(t.data, numel); break;
    default: throw WeightError(t.file + ": tensor '" + name + "' has dtype " + toString(t.dtype) + ", expected a float type");
  }
  return out.view(t.shape);
}

at::Tensor TensorStore::getOptional(const std::string& name, const std::vector<int64_t>& expected) const {
  return has(name) ? get(name, expected) : at::Tensor();
}

}  // namespace headlab
