// GGUF (versions 2 and 3), read-only: llama.cpp's single-file model format.
// Layout, all little-endian: "GGUF", u32 version, u64 tensor count, u64
// metadata count, the metadata key/value pairs, the tensor infos (name, n_dims,
// ne[0..n_dims), u32 ggml type, u64 offset into the data section), padding to
// `general.alignment` (default 32), then the data section. Dims are in ggml
// order: ne[0] is the contiguous (innermost) one, i.e. reversed vs a
// row-major shape.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/mapped_file.h"

namespace tandem::formats {

enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
std::string gguf_type_name(GgufValueType t);  // "u32", "string", "array", ...

// One metadata value. Arrays of scalars keep their raw little-endian bytes (a
// 150k-entry token-type array stays 600 KB, not 150k objects); arrays of
// strings and nested arrays are held element by element.
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  uint64_t u = 0;    // unsigned integers and bool
  int64_t i = 0;     // signed integers
  double f = 0.0;    // f32 / f64
  std::string str;   // string
  // array
  GgufValueType elem_type = GgufValueType::kU8;
  uint64_t count = 0;
  std::vector<uint8_t> raw;          // scalar elements as stored
  std::vector<std::string> strings;  // string elements
  std::vector<GgufValue> arrays;     // nested array elements

  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::kF32 || type == GgufValueType::kF64; }
  // "array of string", "u32", ...
  std::string type_string() const;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t type = 0;          // ggml type id (tensor/ggml_quant.h GgmlType)
  std::vector<int64_t> ne;    // ggml order: ne[0] is contiguous
  uint64_t offset = 0;        // relative to the data section
  uint64_t nbytes = 0;
  int64_t numel() const;
};

// A parsed GGUF header: metadata and tensor infos, every offset checked
// against the size of the bytes it was parsed from.
class Gguf {
 public:
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_start = 0;  // absolute offset of the data section
  std::string source;       // file name, for messages

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  // nullptr when absent.
  const GgufValue* find(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  // Typed getters: throw tandem::Error "<source>: metadata 'k' missing" or
  // "... has type string, expected an integer". The *_or variants return the
  // default when the key is absent (a present key of the wrong type still throws).
  int64_t get_int(const std::string& key) const;
  int64_t get_int_or(const std::string& key, int64_t def) const;
  double get_float(const std::string& key) const;  // accepts integers too
  double get_float_or(const std::string& key, double def) const;
  bool get_bool_or(const std::string& key, bool def) const;
  std::string get_string(const std::string& key) const;
  std::optional<std::string> get_string_opt(const std::string& key) const;
  // Element count of an array value; throws when missing or not an array.
  uint64_t get_array_size(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;

 private:
  friend Gguf parse_gguf(std::span<const uint8_t> file, const std::string& source);
  [[noreturn]] void fail_type(const std::string& key, const GgufValue& v, const char* expected) const;
  const GgufValue& require(const std::string& key) const;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t> meta_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Parses and validates a whole GGUF file held in `file` (pure: no I/O, so it
// can be fuzzed). Any problem throws tandem::Error naming `source` and the
// key or tensor. Never reads out of bounds; allocations are bounded by the
// input size.
Gguf parse_gguf(std::span<const uint8_t> file, const std::string& source);

// One tensor's bytes in the mapping.
struct GgufTensorData {
  const GgufTensorInfo* info = nullptr;
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
};

// A memory-mapped GGUF file.
class GgufFile {
 public:
  static std::unique_ptr<GgufFile> open(const std::filesystem::path& path);
  const Gguf& gguf() const { return gguf_; }
  const std::filesystem::path& path() const { return file_->path(); }
  // Throws tandem::Error naming the file and tensor when absent.
  GgufTensorData tensor(const std::string& name) const;
  GgufTensorData view(const GgufTensorInfo& info) const;

 private:
  std::shared_ptr<MappedFile> file_;
  Gguf gguf_;
};

}  // namespace tandem::formats
