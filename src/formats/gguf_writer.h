// GGUF v3 writer: the inverse of formats/gguf.h. Metadata and tensor infos are
// collected first (they are small), then the file is written front to back with
// the tensor data streamed in, tensor by tensor and chunk by chunk, so a
// multi-GB model never has to be held in memory.
//
// Usage:
//   GgufWriter w;                              // general.alignment 32
//   w.add_string("general.architecture", "llama");
//   w.add_tensor("token_embd.weight", {H, V}, GgmlType::kQ8_0);   // ggml order: ne[0] innermost
//   w.begin(path);                             // header, metadata, tensor infos, padding
//   w.write_tensor_data(bytes, n);             // in add_tensor order, any chunking
//   w.finish();                                // checks every byte arrived, renames into place
//
// The file is written to "<path>.partial" and renamed on finish(), so a crash
// or an error never leaves a truncated file under the final name. Any I/O
// failure throws tandem::Error naming the file and the OS reason.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "tensor/ggml_quant.h"

namespace tandem::formats {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // ---- metadata (before begin()); keys must be unique ----
  void add_value(const std::string& key, GgufValue v);  // any type, arrays included
  void add_u8(const std::string& key, uint8_t v);
  void add_i8(const std::string& key, int8_t v);
  void add_u16(const std::string& key, uint16_t v);
  void add_i16(const std::string& key, int16_t v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_u64(const std::string& key, uint64_t v);
  void add_i64(const std::string& key, int64_t v);
  void add_f32(const std::string& key, float v);
  void add_f64(const std::string& key, double v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_string_array(const std::string& key, std::vector<std::string> v);
  // An array of scalars of type `elem` (not string/array): `count` elements of
  // little-endian bytes at `data`.
  void add_scalar_array(const std::string& key, GgufValueType elem, const void* data, uint64_t count);
  void add_i32_array(const std::string& key, std::span<const int32_t> v);
  void add_f32_array(const std::string& key, std::span<const float> v);
  bool has_key(const std::string& key) const;

  // ---- tensors (before begin()) ----
  // `ne` in ggml order (ne[0] contiguous); ne[0] must be a whole number of the
  // type's blocks. Returns the tensor's byte size.
  uint64_t add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type);
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  // ---- writing ----
  void begin(const std::filesystem::path& path);
  // Appends bytes to the current tensor (the first not yet complete, in
  // add_tensor order); a chunk may not run past its end. Padding between
  // tensors is written automatically.
  void write_tensor_data(const void* data, uint64_t n);
  // The name of the tensor the next write_tensor_data() bytes go to ("" when all are complete).
  std::string current_tensor() const;
  // Throws unless every tensor's bytes were written; closes and renames into place.
  void finish();
  // Bytes written so far (the file size after finish()).
  uint64_t bytes_written() const { return pos_; }

 private:
  void put(const void* p, uint64_t n);
  void put_string(const std::string& s);
  void put_value(const GgufValue& v, const std::string& key);
  void pad_to_alignment();
  [[noreturn]] void io_fail(const std::string& what);
  void check_open_for_definitions(const std::string& what) const;

  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  uint64_t data_size_ = 0;  // padded size of the data section so far

  std::filesystem::path path_, partial_;
  std::FILE* file_ = nullptr;
  bool begun_ = false, finished_ = false;
  uint64_t pos_ = 0;
  size_t cur_ = 0;          // index of the tensor being written
  uint64_t cur_done_ = 0;   // bytes of it written
};

}  // namespace tandem::formats
