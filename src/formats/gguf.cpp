#include "formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "base/error.h"
#include "tensor/ggml_quant.h"

namespace tandem::formats {

namespace {

constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;  // no sane key or token is 1 GiB
constexpr int kMaxArrayDepth = 8;                       // nested arrays: bounds the recursion
constexpr uint32_t kMaxDims = 4;                        // GGML_MAX_DIMS

struct TypeLayout {
  int64_t block_size;
  uint64_t type_size;
};

// Block layout of a ggml tensor type; nullopt when the id is unknown.
std::optional<TypeLayout> type_layout(uint32_t type) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  if (info == nullptr) return std::nullopt;
  return TypeLayout{info->block_size, info->type_size};
}

size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    default: return 0;  // string, array
  }
}

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kF64); }

// Bounds-checked little-endian cursor over the input. Every read checks the
// remaining size first, so malformed input can only produce an Error.
class Reader {
 public:
  Reader(std::span<const uint8_t> b, const std::string& source) : b_(b), source_(source) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return b_.size() - pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(source_ + ": " + what + " (at byte " + std::to_string(pos_) + ")");
  }
  void need(uint64_t n, const std::string& what) const {
    if (n > remaining()) fail("file truncated reading " + what);
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " length");
    if (n > kMaxStringBytes) fail(what + " has absurd length " + std::to_string(n));
    need(n, what);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }
  void read_bytes(uint8_t* dst, uint64_t n, const std::string& what) {
    need(n, what);
    if (n != 0) std::memcpy(dst, b_.data() + pos_, static_cast<size_t>(n));
    pos_ += n;
  }

 private:
  std::span<const uint8_t> b_;
  const std::string& source_;
  uint64_t pos_ = 0;
};

// Smallest encoding of one element of type t: caps counts by remaining bytes.
uint64_t min_encoded_size(GgufValueType t) {
  if (t == GgufValueType::kString) return 8;
  if (t == GgufValueType::kArray) return 12;
  return scalar_size(t);
}

void read_scalar(Reader& r, GgufValue& v, const std::string& what) {
  switch (v.type) {
    case GgufValueType::kU8: v.u = r.read<uint8_t>(what); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::kI8: v.i = r.read<int8_t>(what); break;
    case GgufValueType::kU16: v.u = r.read<uint16_t>(what); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::kI16: v.i = r.read<int16_t>(what); break;
    case GgufValueType::kU32: v.u = r.read<uint32_t>(what); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::kI32: v.i = r.read<int32_t>(what); break;
    case GgufValueType::kU64: v.u = r.read<uint64_t>(what); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::kI64: v.i = r.read<int64_t>(what); break;
    case GgufValueType::kF32: v.f = r.read<float>(what); break;
    case GgufValueType::kF64: v.f = r.read<double>(what); break;
    case GgufValueType::kBool: {
      const uint8_t b = r.read<uint8_t>(what);
      if (b > 1) r.fail(what + " is a bool with value " + std::to_string(b));
      v.u = b;
      break;
    }
    default: r.fail(what + ": not a scalar type");
  }
  if (v.type == GgufValueType::kI8 || v.type == GgufValueType::kI16 || v.type == GgufValueType::kI32 ||
      v.type == GgufValueType::kI64) {
    v.u = static_cast<uint64_t>(v.i);
  }
}

void read_value(Reader& r, GgufValue& v, const std::string& what, int depth);

void read_array(Reader& r, GgufValue& v, const std::string& what, int depth) {
  if (depth >= kMaxArrayDepth) r.fail(what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth));
  const uint32_t et = r.read<uint32_t>(what + " element type");
  if (!valid_value_type(et)) r.fail(what + ": unknown array element type " + std::to_string(et));
  v.elem_type = static_cast<GgufValueType>(et);
  v.count = r.read<uint64_t>(what + " element count");
  // Each element needs at least min_encoded_size bytes, so a count the rest of
  // the file cannot hold is rejected before anything is allocated.
  const uint64_t min_size = min_encoded_size(v.elem_type);
  if (v.count > r.remaining() / min_size) {
    r.fail(what + " has absurd element count " + std::to_string(v.count) + " for the " +
           std::to_string(r.remaining()) + " bytes left (file truncated?)");
  }
  if (v.elem_type == GgufValueType::kString) {
    v.strings.reserve(static_cast<size_t>(v.count));
    for (uint64_t k = 0; k < v.count; ++k) v.strings.push_back(r.read_string(what + "[" + std::to_string(k) + "]"));
  } else if (v.elem_type == GgufValueType::kArray) {
    v.arrays.resize(static_cast<size_t>(v.count));
    for (uint64_t k = 0; k < v.count; ++k) {
      GgufValue& e = v.arrays[static_cast<size_t>(k)];
      e.type = GgufValueType::kArray;
      read_array(r, e, what + "[" + std::to_string(k) + "]", depth + 1);
    }
  } else {
    v.raw.resize(static_cast<size_t>(v.count * min_size));
    r.read_bytes(v.raw.data(), v.raw.size(), what);
    if (v.elem_type == GgufValueType::kBool) {
      for (uint8_t b : v.raw) {
        if (b > 1) r.fail(what + " holds a bool with value " + std::to_string(b));
      }
    }
  }
}

void read_value(Reader& r, GgufValue& v, const std::string& what, int depth) {
  if (v.type == GgufValueType::kString) {
    v.str = r.read_string(what);
  } else if (v.type == GgufValueType::kArray) {
    read_array(r, v, what, depth);
  } else {
    read_scalar(r, v, what);
  }
}

// a*b for non-negative values, nullopt on overflow.
std::optional<uint64_t> mul_checked(uint64_t a, uint64_t b) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return std::nullopt;
  return a * b;
}

}  // namespace

std::string gguf_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: return "u8";
    case GgufValueType::kI8: return "i8";
    case GgufValueType::kU16: return "u16";
    case GgufValueType::kI16: return "i16";
    case GgufValueType::kU32: return "u32";
    case GgufValueType::kI32: return "i32";
    case GgufValueType::kF32: return "f32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kU64: return "u64";
    case GgufValueType::kI64: return "i64";
    case GgufValueType::kF64: return "f64";
  }
  return "type " + std::to_string(static_cast<uint32_t>(t));
}

bool GgufValue::is_integer() const {
  return scalar_size(type) != 0 && type != GgufValueType::kBool && !is_float();
}

std::string GgufValue::type_string() const {
  if (type != GgufValueType::kArray) return gguf_type_name(type);
  return "array of " + gguf_type_name(elem_type);
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // checked against overflow at parse time
  return n;
}

// ---- Gguf getters --------------------------------------------------------

const GgufValue* Gguf::find(const std::string& key) const {
  auto it = meta_index_.find(key);
  return it == meta_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensorInfo* Gguf::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void Gguf::fail_type(const std::string& key, const GgufValue& v, const char* expected) const {
  throw Error(source + ": metadata '" + key + "' has type " + v.type_string() + ", expected " + expected);
}

const GgufValue& Gguf::require(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw Error(source + ": metadata '" + key + "' missing");
  return *v;
}

int64_t Gguf::get_int(const std::string& key) const {
  const GgufValue& v = require(key);
  if (!v.is_integer()) fail_type(key, v, "an integer");
  if (v.type == GgufValueType::kU64 && v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw Error(source + ": metadata '" + key + "' = " + std::to_string(v.u) + " is out of range");
  }
  return v.i;
}

int64_t Gguf::get_int_or(const std::string& key, int64_t def) const { return find(key) ? get_int(key) : def; }

double Gguf::get_float(const std::string& key) const {
  const GgufValue& v = require(key);
  if (v.is_float()) return v.f;
  if (v.is_integer()) return static_cast<double>(v.i);
  fail_type(key, v, "a number");
}

double Gguf::get_float_or(const std::string& key, double def) const { return find(key) ? get_float(key) : def; }

bool Gguf::get_bool_or(const std::string& key, bool def) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return def;
  if (v->type != GgufValueType::kBool) fail_type(key, *v, "a bool");
  return v->u != 0;
}

std::string Gguf::get_string(const std::string& key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufValueType::kString) fail_type(key, v, "a string");
  return v.str;
}

std::optional<std::string> Gguf::get_string_opt(const std::string& key) const {
  if (!find(key)) return std::nullopt;
  return get_string(key);
}

uint64_t Gguf::get_array_size(const std::string& key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufValueType::kArray) fail_type(key, v, "an array");
  return v.count;
}

std::vector<std::string> Gguf::get_string_array(const std::string& key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufValueType::kArray || v.elem_type != GgufValueType::kString) {
    fail_type(key, v, "an array of string");
  }
  return v.strings;
}

// ---- parsing -------------------------------------------------------------

Gguf parse_gguf(std::span<const uint8_t> file, const std::string& source) {
  Gguf g;
  g.source = source;
  Reader r(file, source);
  if (file.size() < 4 || std::memcmp(file.data(), "GGUF", 4) != 0) {
    throw Error(source + ": not a GGUF file (bad magic)");
  }
  (void)r.read<uint32_t>("magic");
  g.version = r.read<uint32_t>("version");
  if (g.version == 1) throw Error(source + ": GGUF version 1 is not supported (only versions 2 and 3)");
  if (g.version != 2 && g.version != 3) {
    throw Error(source + ": unsupported GGUF version " + std::to_string(g.version) + " (only versions 2 and 3)");
  }
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  // Each key/value needs >= 13 bytes (key length, type, one byte of value).
  if (n_kv > r.remaining() / 13) {
    r.fail("absurd metadata count " + std::to_string(n_kv) + " for the " + std::to_string(r.remaining()) +
           " bytes left (file truncated?)");
  }

  g.metadata_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.read_string("metadata key #" + std::to_string(k));
    const uint32_t t = r.read<uint32_t>("type of metadata '" + key + "'");
    if (!valid_value_type(t)) r.fail("metadata '" + key + "' has unknown value type " + std::to_string(t));
    GgufValue v;
    v.type = static_cast<GgufValueType>(t);
    read_value(r, v, "metadata '" + key + "'", 0);
    if (!g.meta_index_.emplace(key, g.metadata_.size()).second) r.fail("duplicate metadata key '" + key + "'");
    g.metadata_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = g.find("general.alignment")) {
    if (a->type != GgufValueType::kU32) g.fail_type("general.alignment", *a, "u32");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      throw Error(source + ": metadata 'general.alignment' = " + std::to_string(a->u) + " is not a power of two");
    }
    g.alignment = a->u;
  }

  // name length + n_dims + one dim + type + offset.
  if (n_tensors > r.remaining() / 32) {
    r.fail("absurd tensor count " + std::to_string(n_tensors) + " for the " + std::to_string(r.remaining()) +
           " bytes left (file truncated?)");
  }
  g.tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo ti;
    ti.name = r.read_string("name of tensor #" + std::to_string(k));
    const std::string what = "tensor '" + ti.name + "'";
    const uint32_t n_dims = r.read<uint32_t>(what + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims) r.fail(what + " has " + std::to_string(n_dims) + " dims (1 to 4 allowed)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = r.read<uint64_t>(what + " dims");
      if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) r.fail(what + " has a negative dim");
      auto p = mul_checked(numel, n);
      if (!p || *p > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        r.fail(what + " has absurd dims");
      }
      numel = *p;
      ti.ne.push_back(static_cast<int64_t>(n));
    }
    ti.type = r.read<uint32_t>(what + " type");
    ti.offset = r.read<uint64_t>(what + " offset");
    const auto layout = type_layout(ti.type);
    if (!layout) r.fail(what + " has unknown ggml type " + std::to_string(ti.type));
    if (ti.ne[0] % layout->block_size != 0) {
      r.fail(what + " has ne[0] = " + std::to_string(ti.ne[0]) + ", not a multiple of the block size " +
             std::to_string(layout->block_size) + " of type " + std::to_string(ti.type));
    }
    const uint64_t blocks = numel / static_cast<uint64_t>(layout->block_size);
    auto bytes = mul_checked(blocks, layout->type_size);
    if (!bytes) r.fail(what + " has absurd dims");
    ti.nbytes = *bytes;
    if (ti.offset % g.alignment != 0) {
      r.fail(what + " offset " + std::to_string(ti.offset) + " is not a multiple of the alignment " +
             std::to_string(g.alignment));
    }
    if (!g.tensor_index_.emplace(ti.name, g.tensors_.size()).second) r.fail("duplicate tensor name '" + ti.name + "'");
    g.tensors_.push_back(std::move(ti));
  }

  // Data section: the next multiple of the alignment.
  const uint64_t pos = r.pos();
  g.data_start = pos + (g.alignment - pos % g.alignment) % g.alignment;
  if (g.tensors_.empty()) return g;  // vocab-only files may end right after the header
  if (g.data_start > file.size()) throw Error(source + ": file truncated before the tensor data section");
  const uint64_t data_size = file.size() - g.data_start;

  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(g.tensors_.size());
  for (const auto& ti : g.tensors_) {
    if (ti.offset > data_size || ti.nbytes > data_size - ti.offset) {
      throw Error(source + ": tensor '" + ti.name + "' data [" + std::to_string(ti.offset) + ", +" +
                  std::to_string(ti.nbytes) + ") lies outside the " + std::to_string(data_size) +
                  "-byte data section (file truncated?)");
    }
    by_offset.push_back(&ti);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensorInfo* a = by_offset[k - 1];
    const GgufTensorInfo* b = by_offset[k];
    if (a->offset + a->nbytes > b->offset) {
      throw Error(source + ": tensor '" + b->name + "' overlaps tensor '" + a->name + "'");
    }
  }
  return g;
}

// ---- GgufFile ------------------------------------------------------------

std::unique_ptr<GgufFile> GgufFile::open(const std::filesystem::path& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->file_ = MappedFile::open(path);
  f->gguf_ = parse_gguf(f->file_->bytes(), path.string());
  return f;
}

GgufTensorData GgufFile::view(const GgufTensorInfo& info) const {
  // parse_gguf checked that the bytes lie inside the file.
  return GgufTensorData{&info, file_->data() + gguf_.data_start + info.offset, info.nbytes};
}

GgufTensorData GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* ti = gguf_.find_tensor(name);
  if (ti == nullptr) throw Error(path().string() + ": tensor '" + name + "' not found");
  return view(*ti);
}

}  // namespace tandem::formats
