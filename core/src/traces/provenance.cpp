#include "headlab/core/provenance.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "headlab/core/errors.h"
#include "headlab/core/model_config.h"
#include "headlab_version.h"

namespace fs = std::filesystem;

namespace headlab {

namespace {
// SHA-256 (FIPS 180-4, section 6.2).
class Sha256 {
 public:
  void update(const uint8_t* p, size_t n) {
    m_bytes += n;
    while (n > 0) {
      const size_t take = std::min(n, 64 - m_used);
      std::memcpy(m_block.data() + m_used, p, take);
      m_used += take, p += take, n -= take;
      if (m_used == 64) compress(), m_used = 0;
    }
  }
  std::string hex() {
    const uint64_t bits = m_bytes * 8;
    const uint8_t one = 0x80, zero = 0;
    update(&one, 1);
    while (m_used != 56) update(&zero, 1);
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
    update(length, 8);
    std::ostringstream out;
    for (uint32_t v : m_h) out << std::hex << std::setw(8) << std::setfill('0') << v;
    return out.str();
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void compress() {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
        0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
        0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
        0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
        0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
        0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = (uint32_t{m_block[4 * i]} << 24) | (uint32_t{m_block[4 * i + 1]} << 16) | (uint32_t{m_block[4 * i + 2]} << 8) | m_block[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = m_h[0], b = m_h[1], c = m_h[2], d = m_h[3], e = m_h[4], f = m_h[5], g = m_h[6], h = m_h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    const uint32_t add[8] = {a, b, c, d, e, f, g, h};
    for (int i = 0; i < 8; ++i) m_h[i] += add[i];
  }
  std::array<uint32_t, 8> m_h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<uint8_t, 64> m_block{};
  size_t m_used = 0;
  uint64_t m_bytes = 0;
};

std::string utcNow() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool isModelFile(const fs::path& p) {
  const std::string name = p.filename().string(), ext = p.extension().string();
  return ext == ".safetensors" || name == "config.json" || name == "model.safetensors.index.json" || name == "tokenizer.json" ||
         name == "tokenizer.model" || name == "tokenizer_config.json" || name == "vocab.json" || name == "merges.txt";
}
}  // namespace

std::string sha256Hex(const void* data, size_t size) {
  Sha256 h;
  h.update(static_cast<const uint8_t*>(data), size);
  return h.hex();
}

std::string sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open to hash");
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw IoError(path + ": read failed while hashing");
  return h.hex();
}

std::vector<std::string> modelFiles(const std::string& source) {
  std::vector<std::string> out;
  std::error_code ec;
  if (fs::is_directory(source, ec)) {
    for (const auto& e : fs::directory_iterator(source, ec))
      if (e.is_regular_file() && isModelFile(e.path())) out.push_back(e.path().string());
  } else if (fs::is_regular_file(source, ec)) {
    out.push_back(source);
    const fs::path dir = fs::path(source).parent_path().empty() ? fs::path(".") : fs::path(source).parent_path();
    if (fs::path(source).extension() == ".bin")  // llama2.c: the tokenizer beside it
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (e.is_regular_file() && e.path() != fs::path(source) && name.rfind("tok", 0) == 0 && e.path().extension() == ".bin")
          out.push_back(e.path().string());
      }
  }
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json provenance(const ModelConfig& c, const ProvenanceInputs& in) {
  nlohmann::json files = nlohmann::json::array();
  auto hashed = [](const std::string& path) {
    std::error_code ec;
    return nlohmann::json{{"path", fs::absolute(path, ec).string()}, {"bytes", fs::file_size(path, ec)}, {"sha256", sha256File(path)}};
  };
  for (const auto& f : modelFiles(in.modelSource)) files.push_back(hashed(f));
  nlohmann::json extra = nlohmann::json::array();
  for (const auto& f : in.extraFiles)
    if (!f.empty()) extra.push_back(hashed(f));
  std::error_code ec;
  return {{"app", "headlab"},
          {"version", HEADLAB_VERSION_STRING},
          {"git_commit", HEADLAB_GIT_COMMIT},
          {"command_line", in.commandLine},
          {"model", {{"source", in.modelSource},
                     {"path", fs::exists(in.modelSource, ec) ? fs::absolute(in.modelSource, ec).string() : in.modelSource},
                     {"format", in.modelFormat},
                     {"files", files}}},
          {"config", configToJson(c)},
          {"extra_files", extra},
          {"dtype", in.dtype},
          {"device", in.device},
          {"threads", at::get_num_threads()},
          {"attention", in.attention},
          {"seed", in.seed},
          {"created", utcNow()}};
}

void writeProvenanceSidecar(const std::string& path, const nlohmann::json& record) {
  const std::string target = path + ".provenance.json", temp = target + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << record.dump(2) << "\n";
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(temp, ec);
      throw IoError(target + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(temp, target, ec);
  if (ec) {
    fs::remove(temp, ec);
    throw IoError(target + ": cannot move into place: " + ec.message());
  }
}

}  // namespace headlab
