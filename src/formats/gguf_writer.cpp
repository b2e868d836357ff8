#include "formats/gguf_writer.h"

#include <cerrno>
#include <cstring>
#include <set>

#include "base/error.h"

namespace tandem::formats {

namespace {

constexpr uint32_t kGgufVersion = 3;

size_t scalar_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    default: return 0;
  }
}

GgufValue scalar(GgufValueType t) {
  GgufValue v;
  v.type = t;
  return v;
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    throw Error("gguf writer: alignment " + std::to_string(alignment) + " is not a power of two");
  }
}

GgufWriter::~GgufWriter() {
  if (file_ != nullptr) {
    // Abandoned (an exception before finish()): drop the partial file.
    std::fclose(file_);
    std::error_code ec;
    std::filesystem::remove(partial_, ec);
  }
}

void GgufWriter::check_open_for_definitions(const std::string& what) const {
  if (begun_) throw Error("gguf writer: " + what + " after begin()");
}

void GgufWriter::add_value(const std::string& key, GgufValue v) {
  check_open_for_definitions("metadata '" + key + "' added");
  if (has_key(key)) throw Error("gguf writer: duplicate metadata key '" + key + "'");
  if (v.type == GgufValueType::kArray) {
    if (v.elem_type == GgufValueType::kString) {
      v.count = v.strings.size();
    } else if (v.elem_type == GgufValueType::kArray) {
      v.count = v.arrays.size();
    } else if (v.raw.size() != v.count * scalar_bytes(v.elem_type)) {
      throw Error("gguf writer: metadata '" + key + "' holds " + std::to_string(v.raw.size()) + " bytes for " +
                  std::to_string(v.count) + " elements of " + gguf_type_name(v.elem_type));
    }
  }
  metadata_.emplace_back(key, std::move(v));
}

bool GgufWriter::has_key(const std::string& key) const {
  for (const auto& [k, v] : metadata_) {
    if (k == key) return true;
  }
  return false;
}

void GgufWriter::add_u8(const std::string& key, uint8_t x) { GgufValue v = scalar(GgufValueType::kU8); v.u = x; add_value(key, std::move(v)); }
void GgufWriter::add_i8(const std::string& key, int8_t x) { GgufValue v = scalar(GgufValueType::kI8); v.i = x; add_value(key, std::move(v)); }
void GgufWriter::add_u16(const std::string& key, uint16_t x) { GgufValue v = scalar(GgufValueType::kU16); v.u = x; add_value(key, std::move(v)); }
void GgufWriter::add_i16(const std::string& key, int16_t x) { GgufValue v = scalar(GgufValueType::kI16); v.i = x; add_value(key, std::move(v)); }
void GgufWriter::add_u32(const std::string& key, uint32_t x) { GgufValue v = scalar(GgufValueType::kU32); v.u = x; add_value(key, std::move(v)); }
void GgufWriter::add_i32(const std::string& key, int32_t x) { GgufValue v = scalar(GgufValueType::kI32); v.i = x; add_value(key, std::move(v)); }
void GgufWriter::add_u64(const std::string& key, uint64_t x) { GgufValue v = scalar(GgufValueType::kU64); v.u = x; add_value(key, std::move(v)); }
void GgufWriter::add_i64(const std::string& key, int64_t x) { GgufValue v = scalar(GgufValueType::kI64); v.i = x; add_value(key, std::move(v)); }
void GgufWriter::add_f32(const std::string& key, float x) { GgufValue v = scalar(GgufValueType::kF32); v.f = x; add_value(key, std::move(v)); }
void GgufWriter::add_f64(const std::string& key, double x) { GgufValue v = scalar(GgufValueType::kF64); v.f = x; add_value(key, std::move(v)); }
void GgufWriter::add_bool(const std::string& key, bool x) { GgufValue v = scalar(GgufValueType::kBool); v.u = x ? 1 : 0; add_value(key, std::move(v)); }

void GgufWriter::add_string(const std::string& key, const std::string& x) {
  GgufValue v = scalar(GgufValueType::kString);
  v.str = x;
  add_value(key, std::move(v));
}

void GgufWriter::add_string_array(const std::string& key, std::vector<std::string> x) {
  GgufValue v = scalar(GgufValueType::kArray);
  v.elem_type = GgufValueType::kString;
  v.count = x.size();
  v.strings = std::move(x);
  add_value(key, std::move(v));
}

void GgufWriter::add_scalar_array(const std::string& key, GgufValueType elem, const void* data, uint64_t count) {
  const size_t es = scalar_bytes(elem);
  if (es == 0) throw Error("gguf writer: metadata '" + key + "': " + gguf_type_name(elem) + " is not a scalar type");
  GgufValue v = scalar(GgufValueType::kArray);
  v.elem_type = elem;
  v.count = count;
  v.raw.resize(static_cast<size_t>(count) * es);
  if (!v.raw.empty()) std::memcpy(v.raw.data(), data, v.raw.size());
  add_value(key, std::move(v));
}

void GgufWriter::add_i32_array(const std::string& key, std::span<const int32_t> x) {
  add_scalar_array(key, GgufValueType::kI32, x.data(), x.size());
}
void GgufWriter::add_f32_array(const std::string& key, std::span<const float> x) {
  add_scalar_array(key, GgufValueType::kF32, x.data(), x.size());
}

uint64_t GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type) {
  check_open_for_definitions("tensor '" + name + "' added");
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  if (info == nullptr) throw Error("gguf writer: tensor '" + name + "' has an unknown ggml type");
  if (ne.empty() || ne.size() > 4) throw Error("gguf writer: tensor '" + name + "' must have 1 to 4 dims");
  for (const auto& t : tensors_) {
    if (t.name == name) throw Error("gguf writer: duplicate tensor '" + name + "'");
  }
  for (int64_t d : ne) {
    if (d <= 0) throw Error("gguf writer: tensor '" + name + "' has a non-positive dim");
  }
  if (ne[0] % info->block_size != 0) {
    throw Error("gguf writer: tensor '" + name + "' row length " + std::to_string(ne[0]) +
                " is not a multiple of " + std::string(info->name) + "'s block size " +
                std::to_string(info->block_size));
  }
  GgufTensorInfo ti;
  ti.name = name;
  ti.type = static_cast<uint32_t>(type);
  ti.ne = std::move(ne);
  uint64_t rows = 1;
  for (size_t k = 1; k < ti.ne.size(); ++k) rows *= static_cast<uint64_t>(ti.ne[k]);
  ti.nbytes = ggml_row_size(type, ti.ne[0]) * rows;
  ti.offset = data_size_;
  data_size_ += ti.nbytes + (alignment_ - ti.nbytes % alignment_) % alignment_;
  tensors_.push_back(std::move(ti));
  return tensors_.back().nbytes;
}

void GgufWriter::io_fail(const std::string& what) {
  const std::string reason = std::strerror(errno);
  if (file_ != nullptr) {
    std::fclose(file_);
    file_ = nullptr;
    std::error_code ec;
    std::filesystem::remove(partial_, ec);
  }
  throw Error(path_.string() + ": " + what + " failed: " + reason);
}

void GgufWriter::put(const void* p, uint64_t n) {
  if (n == 0) return;
  if (std::fwrite(p, 1, static_cast<size_t>(n), file_) != n) io_fail("write");
  pos_ += n;
}

void GgufWriter::put_string(const std::string& s) {
  const uint64_t n = s.size();
  put(&n, 8);
  put(s.data(), n);
}

void GgufWriter::put_value(const GgufValue& v, const std::string& key) {
  switch (v.type) {
    case GgufValueType::kU8: { uint8_t x = static_cast<uint8_t>(v.u); put(&x, 1); break; }
    case GgufValueType::kI8: { int8_t x = static_cast<int8_t>(v.i); put(&x, 1); break; }
    case GgufValueType::kU16: { uint16_t x = static_cast<uint16_t>(v.u); put(&x, 2); break; }
    case GgufValueType::kI16: { int16_t x = static_cast<int16_t>(v.i); put(&x, 2); break; }
    case GgufValueType::kU32: { uint32_t x = static_cast<uint32_t>(v.u); put(&x, 4); break; }
    case GgufValueType::kI32: { int32_t x = static_cast<int32_t>(v.i); put(&x, 4); break; }
    case GgufValueType::kU64: { uint64_t x = v.u; put(&x, 8); break; }
    case GgufValueType::kI64: { int64_t x = v.i; put(&x, 8); break; }
    case GgufValueType::kF32: { float x = static_cast<float>(v.f); put(&x, 4); break; }
    case GgufValueType::kF64: { double x = v.f; put(&x, 8); break; }
    case GgufValueType::kBool: { uint8_t x = v.u ? 1 : 0; put(&x, 1); break; }
    case GgufValueType::kString: put_string(v.str); break;
    case GgufValueType::kArray: {
      const auto et = static_cast<uint32_t>(v.elem_type);
      put(&et, 4);
      if (v.elem_type == GgufValueType::kString) {
        const uint64_t n = v.strings.size();
        put(&n, 8);
        for (const auto& s : v.strings) put_string(s);
      } else if (v.elem_type == GgufValueType::kArray) {
        const uint64_t n = v.arrays.size();
        put(&n, 8);
        for (const auto& a : v.arrays) {
          if (a.type != GgufValueType::kArray) throw Error("gguf writer: metadata '" + key + "': nested element is not an array");
          put_value(a, key);
        }
      } else {
        put(&v.count, 8);
        put(v.raw.data(), v.raw.size());
      }
      break;
    }
  }
}

void GgufWriter::pad_to_alignment() {
  static const uint8_t zeros[256] = {};
  uint64_t pad = (alignment_ - pos_ % alignment_) % alignment_;
  while (pad > 0) {
    const uint64_t n = std::min<uint64_t>(pad, sizeof zeros);
    put(zeros, n);
    pad -= n;
  }
}

void GgufWriter::begin(const std::filesystem::path& path) {
  check_open_for_definitions("begin()");
  path_ = path;
  partial_ = path;
  partial_ += ".partial";
  if (alignment_ != 32 && !has_key("general.alignment")) add_u32("general.alignment", alignment_);
  if (const auto* a = [&]() -> const GgufValue* {
        for (const auto& [k, v] : metadata_) if (k == "general.alignment") return &v;
        return nullptr;
      }();
      a != nullptr && (a->type != GgufValueType::kU32 || a->u != alignment_)) {
    throw Error("gguf writer: metadata 'general.alignment' disagrees with the writer's alignment " +
                std::to_string(alignment_));
  }
  errno = 0;
  file_ = std::fopen(partial_.c_str(), "wb");
  if (file_ == nullptr) io_fail("opening " + partial_.string() + " for writing");
  begun_ = true;
  put("GGUF", 4);
  put(&kGgufVersion, 4);
  const uint64_t n_tensors = tensors_.size(), n_kv = metadata_.size();
  put(&n_tensors, 8);
  put(&n_kv, 8);
  for (const auto& [k, v] : metadata_) {
    put_string(k);
    const auto t = static_cast<uint32_t>(v.type);
    put(&t, 4);
    put_value(v, k);
  }
  for (const auto& ti : tensors_) {
    put_string(ti.name);
    const auto nd = static_cast<uint32_t>(ti.ne.size());
    put(&nd, 4);
    for (int64_t d : ti.ne) {
      const auto u = static_cast<uint64_t>(d);
      put(&u, 8);
    }
    put(&ti.type, 4);
    put(&ti.offset, 8);
  }
  pad_to_alignment();
  cur_ = 0;
  cur_done_ = 0;
}

std::string GgufWriter::current_tensor() const {
  return cur_ < tensors_.size() ? tensors_[cur_].name : std::string();
}

void GgufWriter::write_tensor_data(const void* data, uint64_t n) {
  if (!begun_ || file_ == nullptr) throw Error("gguf writer: tensor data written before begin() or after finish()");
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (cur_ >= tensors_.size()) {
      throw Error(path_.string() + ": more tensor data written than the " + std::to_string(tensors_.size()) +
                  " tensors declared");
    }
    const GgufTensorInfo& ti = tensors_[cur_];
    const uint64_t take = std::min(n, ti.nbytes - cur_done_);
    put(p, take);
    p += take;
    n -= take;
    cur_done_ += take;
    if (cur_done_ == ti.nbytes) {
      pad_to_alignment();
      ++cur_;
      cur_done_ = 0;
    }
  }
}

void GgufWriter::finish() {
  if (!begun_ || file_ == nullptr) throw Error("gguf writer: finish() without begin()");
  // Zero-byte tensors cannot occur (dims are positive), so any tensor left means missing data.
  if (cur_ < tensors_.size()) {
    throw Error(path_.string() + ": tensor '" + tensors_[cur_].name + "' got " + std::to_string(cur_done_) + " of " +
                std::to_string(tensors_[cur_].nbytes) + " bytes before finish()");
  }
  if (std::fflush(file_) != 0) io_fail("flush");
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) {
    std::error_code ec;
    std::filesystem::remove(partial_, ec);
    throw Error(path_.string() + ": close failed: " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(partial_, path_, ec);
  if (ec) {
    const std::string reason = ec.message();
    std::filesystem::remove(partial_, ec);
    throw Error(path_.string() + ": rename from " + partial_.string() + " failed: " + reason);
  }
  finished_ = true;
}

}  // namespace tandem::formats
