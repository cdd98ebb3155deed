#include "headlab/core/h5.h"

#include <filesystem>
#include <limits>

#include <hdf5.h>

#include <cstring>

#include "headlab/core/errors.h"

namespace headlab::h5 {

namespace {
// HDF5 prints its error stack by default; HeadLab reports its own one-line errors instead.
struct Silence {
  Silence() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const Silence kSilence;

hid_t halfType() {
  // IEEE 754 binary16, which h5py reads as numpy float16.
  static hid_t t = [] {
    hid_t h = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(h, 15, 10, 5, 0, 10);
    H5Tset_size(h, 2);
    H5Tset_ebias(h, 15);
    return h;
  }();
  return t;
}

uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, mant = x & 0x7fffff;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (mant ? 0x200 : 0));
  int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    if ((mant >> (shift - 1)) & 1) ++half;  // round half up
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  if (mant & 0x1000) ++half;  // round to nearest
  return static_cast<uint16_t>(half);
}

std::pair<std::string, std::string> splitPath(const std::string& p) {
  auto pos = p.rfind('/');
  if (pos == std::string::npos) return {"/", p};
  return {pos == 0 ? "/" : p.substr(0, pos), p.substr(pos + 1)};
}

Handle strType() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return Handle(t);
}
}  // namespace

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    close();
    m_id = o.m_id;
    o.m_id = -1;
  }
  return *this;
}

void Handle::close() {
  if (m_id < 0) return;
  switch (H5Iget_type(m_id)) {
    case H5I_FILE: H5Fclose(m_id); break;
    case H5I_GROUP: H5Gclose(m_id); break;
    case H5I_DATASET: H5Dclose(m_id); break;
    case H5I_DATASPACE: H5Sclose(m_id); break;
    case H5I_DATATYPE: H5Tclose(m_id); break;
    case H5I_ATTR: H5Aclose(m_id); break;
    case H5I_GENPROP_LST: H5Pclose(m_id); break;
    default: break;
  }
  m_id = -1;
}

void File::fail(const std::string& obj, const std::string& what) const {
  throw IoError(m_path + ": " + obj + ": " + what);
}

size_t File::checkedElements(const std::string& obj, const std::vector<uint64_t>& dims, size_t elementBytes) const {
  uint64_t n = 1;
  for (uint64_t d : dims) {
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / d) fail(obj, "dataspace size overflows");
    n *= d;
  }
  std::error_code ec;
  const uint64_t fileBytes = std::filesystem::file_size(m_path, ec);
  if (ec) return static_cast<size_t>(n);
  const uint64_t limit = fileBytes * 1032 + (uint64_t(1) << 20);
  if (n > limit / elementBytes)
    fail(obj, "declares " + std::to_string(n) + " elements, more than a " + std::to_string(fileBytes) + "-byte file can hold");
  return static_cast<size_t>(n);
}

File File::create(const std::string& path) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) throw IoError(path + ": cannot create HDF5 file");
  return File(Handle(f), path);
}

File File::open(const std::string& path) {
  if (H5Fis_hdf5(path.c_str()) <= 0) throw IoError(path + ": not an HDF5 file");
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw IoError(path + ": cannot open HDF5 file");
  return File(Handle(f), path);
}

void File::flush() {
  if (H5Fflush(id(), H5F_SCOPE_GLOBAL) < 0) fail("/", "flush failed (disk full?)");
}

namespace {
// "/a/b/c" -> "/a", "/a/b", "/a/b/c".
std::vector<std::string> prefixes(const std::string& path) {
  std::vector<std::string> out;
  for (size_t pos = 1; pos <= path.size();) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    if (next > pos) out.push_back(path.substr(0, next));
    pos = next + 1;
  }
  return out;
}
}  // namespace

void File::createGroup(const std::string& path) {
  for (const auto& cur : prefixes(path)) {
    if (H5Lexists(id(), cur.c_str(), H5P_DEFAULT) > 0) continue;
    Handle g(H5Gcreate2(id(), cur.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!g.valid()) fail(cur, "cannot create group");
  }
}

bool File::exists(const std::string& path) const {
  for (const auto& cur : prefixes(path))
    if (H5Lexists(id(), cur.c_str(), H5P_DEFAULT) <= 0) return false;
  return true;
}

std::vector<std::string> File::children(const std::string& group) const {
  Handle g(H5Gopen2(id(), group.c_str(), H5P_DEFAULT));
  if (!g.valid()) fail(group, "no such group");
  H5G_info_t info;
  if (H5Gget_info(g.id(), &info) < 0) fail(group, "cannot read the group");
  std::vector<std::string> out;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    // A corrupt file can make the name unreadable (n < 0) or absurdly long.
    ssize_t n = H5Lget_name_by_idx(g.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0 || n > (1 << 20)) fail(group, "cannot read the name of link " + std::to_string(i));
    std::string name(static_cast<size_t>(n), '\0');
    if (H5Lget_name_by_idx(g.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), n + 1, H5P_DEFAULT) < 0)
      fail(group, "cannot read the name of link " + std::to_string(i));
    out.push_back(name);
  }
  return out;
}

namespace {
Handle openObject(hid_t file, const std::string& obj) {
  return Handle(H5Oopen(file, obj.c_str(), H5P_DEFAULT));
}
}  // namespace

#define HEADLAB_H5_OBJ(obj)                          \
  Handle o = openObject(id(), obj);                  \
  if (!o.valid()) fail(obj, "no such object");       \
  if (H5Aexists(o.id(), name.c_str()) > 0) H5Adelete(o.id(), name.c_str())

void File::setAttr(const std::string& obj, const std::string& name, const std::string& value) {
  HEADLAB_H5_OBJ(obj);
  Handle t = strType();
  Handle s(H5Screate(H5S_SCALAR));
  Handle a(H5Acreate2(o.id(), name.c_str(), t.id(), s.id(), H5P_DEFAULT, H5P_DEFAULT));
  const char* p = value.c_str();
  if (!a.valid() || H5Awrite(a.id(), t.id(), &p) < 0) fail(obj, "cannot write attribute '" + name + "'");
}

void File::setAttr(const std::string& obj, const std::string& name, int64_t value) {
  HEADLAB_H5_OBJ(obj);
  Handle s(H5Screate(H5S_SCALAR));
  Handle a(H5Acreate2(o.id(), name.c_str(), H5T_STD_I64LE, s.id(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || H5Awrite(a.id(), H5T_NATIVE_INT64, &value) < 0) fail(obj, "cannot write attribute '" + name + "'");
}

void File::setAttr(const std::string& obj, const std::string& name, double value) {
  HEADLAB_H5_OBJ(obj);
  Handle s(H5Screate(H5S_SCALAR));
  Handle a(H5Acreate2(o.id(), name.c_str(), H5T_IEEE_F64LE, s.id(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || H5Awrite(a.id(), H5T_NATIVE_DOUBLE, &value) < 0) fail(obj, "cannot write attribute '" + name + "'");
}

void File::setAttr(const std::string& obj, const std::string& name, const std::vector<std::string>& values) {
  HEADLAB_H5_OBJ(obj);
  Handle t = strType();
  hsize_t n = values.size();
  Handle s(H5Screate_simple(1, &n, nullptr));
  Handle a(H5Acreate2(o.id(), name.c_str(), t.id(), s.id(), H5P_DEFAULT, H5P_DEFAULT));
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (!a.valid() || H5Awrite(a.id(), t.id(), ptrs.data()) < 0) fail(obj, "cannot write attribute '" + name + "'");
}
#undef HEADLAB_H5_OBJ

bool File::hasAttr(const std::string& obj, const std::string& name) const {
  Handle o = openObject(id(), obj);
  return o.valid() && H5Aexists(o.id(), name.c_str()) > 0;
}

namespace {
Handle openAttr(hid_t file, const std::string& obj, const std::string& name) {
  Handle o(H5Oopen(file, obj.c_str(), H5P_DEFAULT));
  if (!o.valid()) return Handle();
  return Handle(H5Aopen(o.id(), name.c_str(), H5P_DEFAULT));
}
}  // namespace

std::vector<std::string> File::attrStrings(const std::string& obj, const std::string& name) const {
  Handle a = openAttr(id(), obj, name);
  if (!a.valid()) fail(obj, "no attribute '" + name + "'");
  Handle space(H5Aget_space(a.id()));
  hssize_t n = H5Sget_simple_extent_npoints(space.id());
  Handle ftype(H5Aget_type(a.id()));
  if (H5Tget_class(ftype.id()) != H5T_STRING) fail(obj, "attribute '" + name + "' is not a string");
  if (n < 0) fail(obj, "attribute '" + name + "' has a bad dataspace");
  Handle t = strType();
  std::vector<char*> ptrs(checkedElements(obj, {static_cast<uint64_t>(n)}, sizeof(char*)), nullptr);
  if (H5Aread(a.id(), t.id(), ptrs.data()) < 0) fail(obj, "cannot read attribute '" + name + "'");
  std::vector<std::string> out;
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  H5Dvlen_reclaim(t.id(), space.id(), H5P_DEFAULT, ptrs.data());
  return out;
}

std::string File::attrString(const std::string& obj, const std::string& name) const {
  auto v = attrStrings(obj, name);
  if (v.size() != 1) fail(obj, "attribute '" + name + "' is not a scalar string");
  return v[0];
}

int64_t File::attrInt(const std::string& obj, const std::string& name) const {
  Handle a = openAttr(id(), obj, name);
  int64_t v = 0;
  if (!a.valid() || H5Aread(a.id(), H5T_NATIVE_INT64, &v) < 0) fail(obj, "cannot read integer attribute '" + name + "'");
  return v;
}

double File::attrDouble(const std::string& obj, const std::string& name) const {
  Handle a = openAttr(id(), obj, name);
  double v = 0;
  if (!a.valid() || H5Aread(a.id(), H5T_NATIVE_DOUBLE, &v) < 0) fail(obj, "cannot read float attribute '" + name + "'");
  return v;
}

void File::writeFloats(const std::string& path, const std::vector<uint64_t>& shape, const float* data, const DatasetOptions& opt) {
  createFloats(path, shape, opt);
  writeFloatsAt(path, std::vector<uint64_t>(shape.size(), 0), shape, data);
}

namespace {
Handle openDataset(hid_t file, const std::string& path) { return Handle(H5Dopen2(file, path.c_str(), H5P_DEFAULT)); }
}  // namespace

void File::createFloats(const std::string& path, const std::vector<uint64_t>& shape, const DatasetOptions& opt) {
  auto [parent, leaf] = splitPath(path);
  createGroup(parent);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (!opt.chunk.empty()) {
    std::vector<hsize_t> chunk(opt.chunk.begin(), opt.chunk.end());
    H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
    if (opt.gzipLevel > 0) H5Pset_deflate(dcpl.id(), static_cast<unsigned>(opt.gzipLevel));
  }
  const hid_t fileType = opt.storage == Storage::Float16 ? halfType() : H5T_IEEE_F32LE;
  Handle ds(H5Dcreate2(id(), path.c_str(), fileType, space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT));
  if (!ds.valid()) fail(path, "cannot create dataset");
}

void File::writeFloatsAt(const std::string& path, const std::vector<uint64_t>& start, const std::vector<uint64_t>& count, const float* data) {
  Handle ds = openDataset(id(), path);
  if (!ds.valid()) fail(path, "no such dataset");
  Handle space(H5Dget_space(ds.id()));
  const int nd = H5Sget_simple_extent_ndims(space.id());
  if (nd != static_cast<int>(start.size()) || start.size() != count.size()) fail(path, "selection rank mismatch");
  size_t n = 1;
  for (auto c : count) n *= c;
  if (n == 0) return;  // an empty selection: nothing to write
  std::vector<hsize_t> st(start.begin(), start.end()), ct(count.begin(), count.end());
  // A scalar (rank 0) is written whole; any other selection as a hyperslab.
  if (nd > 0 && H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, st.data(), nullptr, ct.data(), nullptr) < 0) fail(path, "selection out of range");
  Handle mem(nd > 0 ? H5Screate_simple(nd, ct.data(), nullptr) : H5Screate(H5S_SCALAR));
  Handle type(H5Dget_type(ds.id()));
  herr_t rc;
  if (H5Tget_size(type.id()) == 2) {  // float16 storage
    std::vector<uint16_t> h(n);
    for (size_t i = 0; i < n; ++i) h[i] = floatToHalf(data[i]);
    rc = H5Dwrite(ds.id(), halfType(), mem.id(), space.id(), H5P_DEFAULT, h.data());
  } else {
    rc = H5Dwrite(ds.id(), H5T_NATIVE_FLOAT, mem.id(), space.id(), H5P_DEFAULT, data);
  }
  if (rc < 0) fail(path, "write failed (disk full?)");
}

void File::writeInts(const std::string& path, const std::vector<uint64_t>& shape, const int64_t* data) {
  auto [parent, leaf] = splitPath(path);
  createGroup(parent);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle ds(H5Dcreate2(id(), path.c_str(), H5T_STD_I64LE, space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!ds.valid() || H5Dwrite(ds.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail(path, "cannot write dataset");
}

void File::writeStrings(const std::string& path, const std::vector<std::string>& values) {
  auto [parent, leaf] = splitPath(path);
  createGroup(parent);
  Handle t = strType();
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle ds(H5Dcreate2(id(), path.c_str(), t.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (!ds.valid() || H5Dwrite(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    fail(path, "cannot write string dataset");
}

void File::writeString(const std::string& path, const std::string& value) {
  auto [parent, leaf] = splitPath(path);
  createGroup(parent);
  Handle t = strType();
  Handle space(H5Screate(H5S_SCALAR));
  Handle ds(H5Dcreate2(id(), path.c_str(), t.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  const char* p = value.c_str();
  if (!ds.valid() || H5Dwrite(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p) < 0) fail(path, "cannot write string");
}


std::vector<uint64_t> File::shape(const std::string& path) const {
  Handle ds = openDataset(id(), path);
  if (!ds.valid()) fail(path, "no such dataset");
  Handle space(H5Dget_space(ds.id()));
  int nd = H5Sget_simple_extent_ndims(space.id());
  if (nd < 0 || nd > 32) fail(path, "bad dataspace");
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  return std::vector<uint64_t>(dims.begin(), dims.end());
}

std::vector<float> File::readFloats(const std::string& path) const {
  auto s = shape(path);
  std::vector<uint64_t> start(s.size(), 0);
  return readFloats(path, start, s);
}

std::vector<float> File::readFloats(const std::string& path, const std::vector<uint64_t>& start, const std::vector<uint64_t>& count) const {
  Handle ds = openDataset(id(), path);
  if (!ds.valid()) fail(path, "no such dataset");
  Handle space(H5Dget_space(ds.id()));
  int nd = H5Sget_simple_extent_ndims(space.id());
  if (nd != static_cast<int>(start.size()) || start.size() != count.size()) fail(path, "selection rank mismatch");
  std::vector<hsize_t> st(start.begin(), start.end()), ct(count.begin(), count.end());
  if (H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, st.data(), nullptr, ct.data(), nullptr) < 0) fail(path, "selection out of range");
  const size_t n = checkedElements(path, count, sizeof(float));
  Handle mem(H5Screate_simple(nd, ct.data(), nullptr));
  std::vector<float> out(n);
  if (H5Dread(ds.id(), H5T_NATIVE_FLOAT, mem.id(), space.id(), H5P_DEFAULT, out.data()) < 0) fail(path, "read failed");
  return out;
}

std::vector<int64_t> File::readInts(const std::string& path) const {
  Handle ds = openDataset(id(), path);
  if (!ds.valid()) fail(path, "no such dataset");
  std::vector<int64_t> out(checkedElements(path, shape(path), sizeof(int64_t)));
  if (H5Dread(ds.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) fail(path, "read failed");
  return out;
}

std::vector<std::string> File::readStrings(const std::string& path) const {
  Handle ds = openDataset(id(), path);
  if (!ds.valid()) fail(path, "no such dataset");
  Handle space(H5Dget_space(ds.id()));
  hssize_t n = H5Sget_simple_extent_npoints(space.id());
  if (n < 0) fail(path, "bad dataspace");
  Handle t = strType();
  std::vector<char*> ptrs(checkedElements(path, {static_cast<uint64_t>(n)}, sizeof(char*)), nullptr);
  if (H5Dread(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0) fail(path, "read failed");
  std::vector<std::string> out;
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  H5Dvlen_reclaim(t.id(), space.id(), H5P_DEFAULT, ptrs.data());
  return out;
}

std::string File::readString(const std::string& path) const {
  auto v = readStrings(path);
  if (v.size() != 1) fail(path, "not a scalar string");
  return v[0];
}

std::string File::storageOf(const std::string& path) const {
  Handle ds = openDataset(id(), path);
  if (!ds.valid()) fail(path, "no such dataset");
  Handle t(H5Dget_type(ds.id()));
  H5T_class_t c = H5Tget_class(t.id());
  size_t size = H5Tget_size(t.id());
  if (c == H5T_FLOAT) return size == 2 ? "float16" : size == 4 ? "float32" : "float64";
  if (c == H5T_INTEGER) return "int" + std::to_string(size * 8);
  if (c == H5T_STRING) return "string";
  return "other";
}

std::vector<uint64_t> File::chunkOf(const std::string& path) const {
  Handle ds = openDataset(id(), path);
  if (!ds.valid()) fail(path, "no such dataset");
  Handle dcpl(H5Dget_create_plist(ds.id()));
  if (H5Pget_layout(dcpl.id()) != H5D_CHUNKED) return {};
  hsize_t dims[32];
  int nd = H5Pget_chunk(dcpl.id(), 32, dims);
  return std::vector<uint64_t>(dims, dims + std::max(nd, 0));
}

}  // namespace headlab::h5
