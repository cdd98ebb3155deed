#include "headlab/core/tensor_export.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include "headlab/core/errors.h"

namespace fs = std::filesystem;

namespace headlab {

namespace {
// The target's temporary sibling; renamed into place by commit(), removed otherwise.
class AtomicFile {
 public:
  AtomicFile(std::string target, bool force) : m_target(std::move(target)), m_temp(m_target + ".partial") {
    if (fs::exists(m_target) && !force) throw IoError(m_target + ": exists; pass --force to overwrite");
    m_out.open(m_temp, std::ios::binary | std::ios::trunc);
    if (!m_out) throw IoError(m_temp + ": cannot create");
  }
  ~AtomicFile() {
    if (!m_done) {
      m_out.close();
      std::error_code ec;
      fs::remove(m_temp, ec);
    }
  }
  std::ofstream& out() { return m_out; }
  void commit() {
    m_out.flush();
    if (!m_out) throw IoError(m_target + ": write failed (disk full?); nothing was written there");
    m_out.close();
    std::error_code ec;
    fs::rename(m_temp, m_target, ec);
    if (ec) throw IoError(m_target + ": cannot move the finished file into place: " + ec.message());
    m_done = true;
  }

 private:
  std::string m_target, m_temp;
  std::ofstream m_out;
  bool m_done = false;
};

at::Tensor float32(const at::Tensor& t) { return t.detach().to(at::kCPU, at::kFloat).contiguous(); }

uint32_t crc32(const char* data, size_t n, uint32_t crc = 0) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ static_cast<uint8_t>(data[i])) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void put16(std::string& s, uint16_t v) { s.push_back(static_cast<char>(v & 0xFF)), s.push_back(static_cast<char>(v >> 8)); }
void put32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// A .npy v1.0 file's bytes: the header dict padded to a multiple of 64, then the data.
std::string npy(const std::string& descr, const std::vector<int64_t>& shape, const char* data, size_t bytes) {
  std::string dims;  // numpy's tuple: "", "5,", "2, 3"
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  put16(out, static_cast<uint16_t>(header.size()));
  out += header;
  out.append(data, bytes);
  return out;
}
}  // namespace

void writeSafetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata, bool force) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    data.push_back(float32(t));
    const uint64_t bytes = static_cast<uint64_t>(data.back().numel()) * 4;
    header[name] = {{"dtype", "F32"}, {"shape", data.back().sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  AtomicFile f(path, force);
  const uint64_t n = text.size();
  char size[8];
  for (int i = 0; i < 8; ++i) size[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  f.out().write(size, 8);
  f.out() << text;
  for (const auto& t : data) f.out().write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * 4));
  f.commit();
}

void writeNpz(const std::string& path, const std::map<std::string, at::Tensor>& tensors, const std::string& metadataJson, bool force) {
  std::vector<std::pair<std::string, std::string>> members;  // name, .npy bytes
  uint64_t total = 0;
  for (const auto& [name, t] : tensors) {
    at::Tensor x = float32(t);
    const uint64_t bytes = static_cast<uint64_t>(x.numel()) * 4;
    total += bytes;
    if (total > 0xF0000000ull) throw InputError(path + ": more than 4 GiB of arrays, beyond npz without zip64; use --format hdf5");
    members.push_back({name + ".npy", npy("<f4", x.sizes().vec(), static_cast<const char*>(x.data_ptr()), bytes)});
  }
  if (!metadataJson.empty()) {
    // A 0-d unicode array: UTF-32LE code units of the (ASCII) JSON text.
    std::string utf32;
    for (unsigned char ch : metadataJson) put32(utf32, ch);
    members.push_back({"__metadata__.npy", npy("<U" + std::to_string(metadataJson.size()), {}, utf32.data(), utf32.size())});
  }
  std::string central;
  uint64_t offset = 0;
  AtomicFile f(path, force);
  for (const auto& [name, bytes] : members) {
    const uint32_t crc = crc32(bytes.data(), bytes.size());
    std::string local;
    put32(local, 0x04034b50), put16(local, 20), put16(local, 0), put16(local, 0), put16(local, 0), put16(local, 0x21);
    put32(local, crc), put32(local, static_cast<uint32_t>(bytes.size())), put32(local, static_cast<uint32_t>(bytes.size()));
    put16(local, static_cast<uint16_t>(name.size())), put16(local, 0);
    local += name;
    f.out() << local;
    f.out().write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    put32(central, 0x02014b50), put16(central, 20), put16(central, 20), put16(central, 0), put16(central, 0), put16(central, 0), put16(central, 0x21);
    put32(central, crc), put32(central, static_cast<uint32_t>(bytes.size())), put32(central, static_cast<uint32_t>(bytes.size()));
    put16(central, static_cast<uint16_t>(name.size())), put16(central, 0), put16(central, 0), put16(central, 0), put16(central, 0);
    put32(central, 0), put32(central, static_cast<uint32_t>(offset));
    central += name;
    offset += local.size() + bytes.size();
  }
  std::string end;
  put32(end, 0x06054b50), put16(end, 0), put16(end, 0), put16(end, static_cast<uint16_t>(members.size())),
      put16(end, static_cast<uint16_t>(members.size()));
  put32(end, static_cast<uint32_t>(central.size())), put32(end, static_cast<uint32_t>(offset)), put16(end, 0);
  f.out() << central << end;
  f.commit();
}

}  // namespace headlab
