#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace tandem::formats {
namespace {

using nlohmann::json;

// A header larger than this is not a real checkpoint (the reference
// implementation uses the same 100 MB bound).
constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw Error(source + ": " + what);
}

uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& source, const std::string& name) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) {
    fail(source, "tensor '" + name + "': shape is too large");
  }
  return a * b;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file, const std::string& source) {
  if (file.size() < 8) fail(source, "file is too short for a safetensors header (" + std::to_string(file.size()) + " bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<size_t>(i)];
  if (n > kMaxHeaderBytes) fail(source, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > file.size() - 8) {
    fail(source, "header length " + std::to_string(n) + " runs past the end of the file (" +
                     std::to_string(file.size()) + " bytes): truncated file?");
  }
  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = file.size() - h.data_start;

  json j;
  try {
    j = json::parse(file.begin() + 8, file.begin() + static_cast<std::ptrdiff_t>(8 + n));
  } catch (const json::exception& e) {
    fail(source, std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(source, "header is not a JSON object");

  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(source, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(source, "__metadata__." + m.key() + " is not a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail(source, "tensor '" + name + "': entry is not an object");
    SafetensorsEntry e;
    e.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(source, "tensor '" + name + "': missing string field 'dtype'");
    auto dtype = dtype_from_safetensors(dt->get<std::string>());
    if (!dtype) {
      fail(source, "tensor '" + name + "': unsupported dtype '" + dt->get<std::string>() +
                       "' (supported: F32, F16, BF16, I32, I64, I8, U8)");
    }
    e.dtype = *dtype;
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(source, "tensor '" + name + "': missing array field 'shape'");
    uint64_t numel = 1;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned()) fail(source, "tensor '" + name + "': shape has a non-integer or negative dimension");
      uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(source, "tensor '" + name + "': dimension out of range");
      }
      numel = checked_mul(numel, dim, source, name);
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned()) {
      fail(source, "tensor '" + name + "': 'data_offsets' must be two non-negative integers");
    }
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end) fail(source, "tensor '" + name + "': data_offsets begin > end");
    if (e.end > data_size) {
      fail(source, "tensor '" + name + "': data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                       "] out of range (data section is " + std::to_string(data_size) + " bytes): truncated file?");
    }
    uint64_t want = checked_mul(numel, dtype_size(e.dtype), source, name);
    if (want != e.end - e.begin) {
      fail(source, "tensor '" + name + "': shape " + shape_to_string(e.shape) + " of " +
                       std::string(dtype_name(e.dtype)) + " needs " + std::to_string(want) + " bytes but data_offsets span " +
                       std::to_string(e.end - e.begin));
    }
    h.entries.push_back(std::move(e));
  }
  // Tensors must not overlap (the format requires a packed, non-overlapping layout).
  std::vector<const SafetensorsEntry*> sorted;
  for (const auto& e : h.entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i]->begin < sorted[i - 1]->end && sorted[i]->end != sorted[i]->begin) {
      fail(source, "tensors '" + sorted[i - 1]->name + "' and '" + sorted[i]->name + "' overlap");
    }
  }
  return h;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  auto f = std::make_unique<SafetensorsFile>();
  f->file_ = MappedFile::open(path);
  f->header_ = parse_safetensors_header(f->file_->bytes(), path.string());
  for (size_t i = 0; i < f->header_.entries.size(); ++i) f->index_[f->header_.entries[i].name] = i;
  return f;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.entries[it->second];
}

TensorView SafetensorsFile::view(const SafetensorsEntry& e) const {
  TensorView t;
  t.dtype = e.dtype;
  t.shape = e.shape;
  const uint8_t* p = file_->data() + header_.data_start + e.begin;
  size_t align = dtype_size(e.dtype);
  if (reinterpret_cast<uintptr_t>(p) % align != 0) {
    // The format pads headers so data is aligned; a file that does not gets a copy.
    auto copy = std::make_unique<uint8_t[]>(e.end - e.begin + 1);
    std::memcpy(copy.get(), p, e.end - e.begin);
    p = copy.get();
    const_cast<SafetensorsFile*>(this)->realigned_.push_back(std::move(copy));
  }
  t.data = p;
  return t;
}

std::unique_ptr<Checkpoint> Checkpoint::open(const std::filesystem::path& dir) {
  auto c = std::make_unique<Checkpoint>();
  c->dir_ = dir;
  namespace fs = std::filesystem;
  std::vector<fs::path> shards;
  fs::path index = dir / "model.safetensors.index.json";
  fs::path single = dir / "model.safetensors";
  std::map<std::string, std::string> weight_map;
  if (fs::exists(single)) {
    shards.push_back(single);
  } else if (fs::exists(index)) {
    std::ifstream in(index);
    json j;
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw Error(index.string() + ": not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
      throw Error(index.string() + ": missing object field 'weight_map'");
    }
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw Error(index.string() + ": weight_map." + it.key() + " is not a string");
      std::string file = it.value().get<std::string>();
      if (file.find('/') != std::string::npos || file.find("..") != std::string::npos) {
        throw Error(index.string() + ": weight_map." + it.key() + " names a file outside the folder: " + file);
      }
      weight_map[it.key()] = file;
      if (std::find(shards.begin(), shards.end(), dir / file) == shards.end()) shards.push_back(dir / file);
    }
  } else {
    throw Error(dir.string() + ": no model.safetensors or model.safetensors.index.json");
  }
  for (const auto& p : shards) c->files_.push_back(SafetensorsFile::open(p));
  for (size_t i = 0; i < c->files_.size(); ++i) {
    for (const auto& e : c->files_[i]->header().entries) {
      if (c->where_.count(e.name)) {
        throw Error(c->files_[i]->path().string() + ": tensor '" + e.name + "' also appears in another shard");
      }
      c->where_[e.name] = {i, &e};
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (!c->where_.count(name)) {
      throw Error(index.string() + ": tensor '" + name + "' is listed in weight_map but missing from " + file);
    }
  }
  return c;
}

TensorView Checkpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw Error(dir_.string() + ": tensor '" + name + "' not found in the checkpoint");
  return files_[it->second.first]->view(*it->second.second);
}

const SafetensorsEntry& Checkpoint::entry(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw Error(dir_.string() + ": tensor '" + name + "' not found in the checkpoint");
  return *it->second.second;
}

std::string Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return {};
  return files_[it->second.first]->path().filename().string();
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [n, _] : where_) out.push_back(n);
  return out;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t b = 0;
  for (const auto& [n, w] : where_) b += w.second->end - w.second->begin;
  return b;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';  // keep the data 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path.string() + ": cannot open for writing");
  uint64_t n = text.size();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : tensors) {
    uint64_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) bytes *= static_cast<uint64_t>(d);
    out.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(bytes));
  }
  if (!out) throw Error(path.string() + ": write failed");
}

}  // namespace tandem::formats
