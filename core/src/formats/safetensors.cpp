#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"

namespace headlab {

nlohmann::json readJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError(path + ": bad JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for any type
    throw ConfigError(path + ": bad JSON: " + e.what());
  }
}

namespace {
StoredDtype parseSafetensorsDtype(const std::string& s, const std::string& where) {
  if (StoredDtype d = safetensorsDtype(s)) return d;
  throw WeightError(where + " has unsupported dtype '" + s + "' (expected " + safetensorsDtypeList() + ")");
}
}  // namespace

void readSafetensors(const std::string& path, TensorStore& store) {
  auto file = std::make_shared<MappedFile>(path);
  ByteReader r(file->data(), file->size(), path);
  uint64_t headerLen = r.read<uint64_t>("header length");
  if (headerLen > r.remaining())
    throw IoError(path + ": header length " + std::to_string(headerLen) + " exceeds file size " + std::to_string(file->size()));
  std::string headerText = r.readString(headerLen, "header");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(headerText);
  } catch (const nlohmann::json::parse_error& e) {
    throw IoError(path + ": bad JSON header at byte " + std::to_string(e.byte));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(path + ": bad JSON header: " + e.what());
  }
  if (!header.is_object()) throw IoError(path + ": header is not a JSON object");
  const uint64_t dataStart = 8 + headerLen;
  const uint64_t dataSize = file->size() - dataStart;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string where = path + ": tensor '" + it.key() + "'";
    const auto& e = it.value();
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets") ||
        !e["dtype"].is_string() || !e["shape"].is_array() || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
      throw IoError(where + " has a malformed entry (expected dtype, shape, data_offsets)");
    RawTensor t;
    t.name = it.key();
    t.file = path;
    t.dtype = parseSafetensorsDtype(e["dtype"].get<std::string>(), where);
    uint64_t numel = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw IoError(where + " has a negative or non-integer dimension");
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && numel > (uint64_t(1) << 62) / v) throw IoError(where + " has a shape whose size overflows");
      numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    const auto& off = e["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw IoError(where + " has non-integer data_offsets");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > dataSize)
      throw IoError(where + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                    "] outside the data area of " + std::to_string(dataSize) + " bytes");
    uint64_t expected = storedBytes(t.dtype, numel, where);
    if (end - begin != expected)
      throw IoError(where + " has " + std::to_string(end - begin) + " bytes; expected " + std::to_string(expected) +
                    " for shape " + shapeString(t.shape) + " " + toString(t.dtype));
    t.data = file->data() + dataStart + begin;
    t.nbytes = expected;
    ranges.emplace_back(begin, end);
    store.add(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      throw IoError(path + ": tensors overlap at data offset " + std::to_string(ranges[i].first));
  store.addFile(std::move(file));
}

void readSafetensorsFolder(const std::string& folder, TensorStore& store) {
  namespace fs = std::filesystem;
  fs::path single = fs::path(folder) / "model.safetensors";
  fs::path index = fs::path(folder) / "model.safetensors.index.json";
  if (fs::exists(single)) {
    readSafetensors(single.string(), store);
    return;
  }
  if (!fs::exists(index))
    throw IoError(folder + ": no model.safetensors or model.safetensors.index.json");
  nlohmann::json idx = readJsonFile(index.string());
  if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
    throw ConfigError(index.string() + ": missing weight_map");
  std::set<std::string> shards;
  for (auto& [name, file] : idx["weight_map"].items()) {
    if (!file.is_string()) throw ConfigError(index.string() + ": weight_map entry '" + name + "' is not a file name");
    std::string f = file.get<std::string>();
    if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
      throw ConfigError(index.string() + ": shard name '" + f + "' must be a plain file name");
    shards.insert(f);
  }
  for (const auto& s : shards) readSafetensors((fs::path(folder) / s).string(), store);
  for (auto& [name, file] : idx["weight_map"].items())
    if (!store.has(name)) throw WeightError(index.string() + ": tensor '" + name + "' is not in shard " + file.get<std::string>());
}

}  // namespace headlab

namespace headlab {

void writeSafetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<at::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
    uint64_t bytes = static_cast<uint64_t>(c.numel()) * 4;
    header[name] = {{"dtype", "F32"}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(c);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError(path + ": cannot create");
  uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& b : blobs) out.write(static_cast<const char*>(b.data_ptr()), b.numel() * 4);
  out.close();
  if (!out) throw IoError(path + ": write failed (disk full?)");
}

}  // namespace headlab
