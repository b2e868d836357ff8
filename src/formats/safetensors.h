// safetensors: read (mmap, single file or sharded with model.safetensors.index.json)
// and write. Format: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the data; offsets are relative to the byte after the header.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/mapped_file.h"
#include "tensor/tensor.h"

namespace tandem::formats {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // relative to the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t data_start = 0;  // absolute offset of the data section
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
};

// Parses and validates the header of a safetensors file held in `file`.
// Every offset is checked against the file size; any problem throws
// tandem::Error naming `source` and the tensor or field. Never reads out of bounds.
SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file, const std::string& source);

// One mapped safetensors file.
class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  const SafetensorsHeader& header() const { return header_; }
  const std::filesystem::path& path() const { return file_->path(); }
  // nullptr when absent.
  const SafetensorsEntry* find(const std::string& name) const;
  TensorView view(const SafetensorsEntry& e) const;

 private:
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;
  std::vector<std::unique_ptr<uint8_t[]>> realigned_;  // copies of misaligned tensors
};

// A Hugging Face checkpoint folder: model.safetensors, or shards listed in
// model.safetensors.index.json. Tensor lookups go to the right shard.
class Checkpoint {
 public:
  static std::unique_ptr<Checkpoint> open(const std::filesystem::path& dir);

  bool has(const std::string& name) const { return where_.count(name) != 0; }
  // Throws tandem::Error "tensor 'x' not found in <dir>" when absent.
  TensorView get(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;
  std::string file_of(const std::string& name) const;
  std::vector<std::string> names() const;
  uint64_t total_bytes() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, const SafetensorsEntry*>> where_;
};

// Writes tensors (names unique) to a safetensors file.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace tandem::formats
