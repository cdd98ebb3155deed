#include "headlab/core/checkpoint_formats.h"
#include "headlab/core/errors.h"

namespace headlab {

namespace {
// Upper bound on declared element counts: anything larger cannot fit the file and is rejected
// before allocating.
nlohmann::json readValue(ByteReader& r, uint32_t type, int depth);

std::string readGgufString(ByteReader& r, const char* what) {
  uint64_t len = r.read<uint64_t>(what);
  if (len > r.remaining()) r.fail(std::string(what) + " declares " + std::to_string(len) + " bytes, more than the file holds");
  return r.readString(len, what);
}

nlohmann::json readScalar(ByteReader& r, uint32_t type) {
  switch (type) {
    case 0: return r.read<uint8_t>("u8");
    case 1: return r.read<int8_t>("i8");
    case 2: return r.read<uint16_t>("u16");
    case 3: return r.read<int16_t>("i16");
    case 4: return r.read<uint32_t>("u32");
    case 5: return r.read<int32_t>("i32");
    case 6: return r.read<float>("f32");
    case 7: return r.read<uint8_t>("bool") != 0;
    case 8: return readGgufString(r, "string value");
    case 10: return r.read<uint64_t>("u64");
    case 11: return r.read<int64_t>("i64");
    case 12: return r.read<double>("f64");
    default: r.fail("unknown metadata value type " + std::to_string(type));
  }
}

nlohmann::json readValue(ByteReader& r, uint32_t type, int depth) {
  if (type != 9) return readScalar(r, type);
  if (depth > 2) r.fail("nested arrays too deep");
  uint32_t elemType = r.read<uint32_t>("array element type");
  uint64_t count = r.read<uint64_t>("array length");
  if (count > r.remaining()) r.fail("array declares " + std::to_string(count) + " elements, more than the file holds");
  nlohmann::json arr = nlohmann::json::array();
  arr.get_ref<nlohmann::json::array_t&>().reserve(count);
  for (uint64_t i = 0; i < count; ++i) arr.push_back(readValue(r, elemType, depth + 1));
  return arr;
}

StoredDtype ggmlType(uint32_t t, const std::string& where) {
  if (StoredDtype d = ggmlDtype(t)) return d;
  throw WeightError(where + " has ggml type " + std::to_string(t) + "; supported: " + ggmlDtypeList());
}
}  // namespace

GgufFile readGguf(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  ByteReader r(file->data(), file->size(), path);
  GgufFile g;
  std::string magic = r.readString(4, "magic");
  if (magic != "GGUF") throw IoError(path + ": not a GGUF file (magic '" + magic + "')");
  g.version = r.read<uint32_t>("version");
  if (g.version < 2 || g.version > 3) throw IoError(path + ": GGUF version " + std::to_string(g.version) + " unsupported (expected 3)");
  uint64_t nTensors = r.read<uint64_t>("tensor count");
  uint64_t nKv = r.read<uint64_t>("metadata count");
  // Each tensor info and metadata entry takes at least 8 bytes: reject absurd counts up front.
  if (nTensors > file->size() / 8 || nKv > file->size() / 8)
    throw IoError(path + ": declares " + std::to_string(nTensors) + " tensors and " + std::to_string(nKv) +
                  " metadata entries, more than a " + std::to_string(file->size()) + "-byte file can hold");
  g.metadata = nlohmann::json::object();
  for (uint64_t i = 0; i < nKv; ++i) {
    std::string key = readGgufString(r, "metadata key");
    uint32_t type = r.read<uint32_t>("metadata type");
    g.metadata[key] = readValue(r, type, 0);
  }
  struct Info {
    RawTensor t;
    uint64_t offset;
  };
  std::vector<Info> infos;
  for (uint64_t i = 0; i < nTensors; ++i) {
    Info info;
    info.t.name = readGgufString(r, "tensor name");
    info.t.file = path;
    const std::string where = path + ": tensor '" + info.t.name + "'";
    uint32_t nDims = r.read<uint32_t>("tensor n_dims");
    if (nDims == 0 || nDims > 4) throw IoError(where + " has " + std::to_string(nDims) + " dims (expected 1..4)");
    std::vector<int64_t> ne(nDims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nDims; ++d) {
      uint64_t v = r.read<uint64_t>("tensor dim");
      if (v == 0 || v > (uint64_t(1) << 40) || numel > (uint64_t(1) << 62) / v)
        throw IoError(where + " has an invalid dimension " + std::to_string(v));
      ne[d] = static_cast<int64_t>(v);
      numel *= v;
    }
    // GGUF lists ne innermost first: reverse to PyTorch's outermost-first order.
    info.t.shape.assign(ne.rbegin(), ne.rend());
    info.t.dtype = ggmlType(r.read<uint32_t>("tensor type"), where);
    info.t.nbytes = storedBytes(info.t.dtype, numel, where);
    info.offset = r.read<uint64_t>("tensor offset");
    infos.push_back(std::move(info));
  }
  uint64_t alignment = 32;
  if (g.metadata.contains("general.alignment") && g.metadata["general.alignment"].is_number_unsigned())
    alignment = g.metadata["general.alignment"].get<uint64_t>();
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) throw IoError(path + ": general.alignment must be a power of two");
  uint64_t dataStart = (r.offset() + alignment - 1) / alignment * alignment;
  if (dataStart > file->size() && nTensors > 0) throw IoError(path + ": truncated before the tensor data");
  const uint64_t dataSize = nTensors > 0 ? file->size() - dataStart : 0;
  for (auto& info : infos) {
    if (info.offset > dataSize || info.t.nbytes > dataSize - info.offset)
      throw IoError(path + ": tensor '" + info.t.name + "' data [" + std::to_string(info.offset) + ", +" +
                    std::to_string(info.t.nbytes) + ") lies past the end of the file (data area " + std::to_string(dataSize) + " bytes)");
    info.t.data = file->data() + dataStart + info.offset;
    g.tensors.add(std::move(info.t));
  }
  g.tensors.addFile(std::move(file));
  return g;
}

}  // namespace headlab
