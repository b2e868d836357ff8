// Helpers shared by the tests: where the fixtures are, temporary folders,
// reading reference tensors, comparing logits.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "kernels/cpu/matmul.h"

namespace tandem::testing {

// ../shared beside the checkout, or $TANDEM_SHARED.
inline std::filesystem::path shared_dir() {
  if (const char* s = std::getenv("TANDEM_SHARED"); s != nullptr && *s) return s;
  return std::filesystem::path(TANDEM_SOURCE_DIR) / ".." / "shared";
}

inline std::filesystem::path source_dir() { return TANDEM_SOURCE_DIR; }

inline nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// A fresh empty folder under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("tandem-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A float32 tensor from a safetensors file, with its shape.
struct F32Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

inline F32Tensor read_f32(const std::filesystem::path& file, const std::string& name) {
  auto f = formats::SafetensorsFile::open(file);
  const auto* e = f->find(name);
  if (e == nullptr) throw std::runtime_error(file.string() + ": no tensor " + name);
  TensorView v = f->view(*e);
  F32Tensor t;
  t.shape = v.shape;
  t.data.resize(static_cast<size_t>(v.numel()));
  kernels::to_f32(v.data, v.dtype, v.numel(), t.data.data());
  return t;
}

// ||a - b|| / ||b|| over n values.
inline double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// Runs a shell command; returns its exit status and captured stdout (stderr to `err` file if given).
struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;
};

inline CommandResult run_command(const std::string& cmd) {
  TempDir tmp;
  std::string full = cmd + " >" + (tmp / "out").string() + " 2>" + (tmp / "err").string();
  int rc = std::system(full.c_str());
  CommandResult r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
  r.out = read_file(tmp / "out");
  r.err = read_file(tmp / "err");
  return r;
}

}  // namespace tandem::testing
