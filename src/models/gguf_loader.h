// Loading llama.cpp GGUF model files into the shared decoder: the metadata is
// mapped to a formats::ModelConfig (as if it came from config.json) and every
// tensor is put under its Hugging Face name and shape, so models/model.cpp runs
// it unchanged. Matrices in a format the kernels compute with (F32, F16, BF16,
// Q8_0, Q4_0, Q5_0, Q4_K, Q6_K) keep their bytes (copied into huge-page memory,
// llama's Q/K rows put back in HF order); other formats (Q4_1, Q5_1, Q2_K,
// Q3_K, Q5_K) and all vectors are dequantized to float32.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "base/host_buffer.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "tensor/tensor.h"

namespace tandem::models {

// Architectures (general.architecture) we can run, as the decoder's model_type.
// Throws tandem::Error naming the file and the architecture otherwise.
formats::ModelConfig gguf_model_config(const formats::Gguf& g);

struct GgufModelWeights {
  formats::ModelConfig config;
  std::map<std::string, TensorView> tensors;  // HF name -> view into `buffers`, HF shape
  std::vector<HostBuffer> buffers;
  std::string stored_types;  // e.g. "F32+Q4_K+Q6_K", for Model::info()
  int64_t params = 0;
};

// Opens, validates and dequantizes a GGUF model file. Throws tandem::Error
// naming the file and the key or tensor on any problem (missing tensor, wrong
// dims, a type we cannot dequantize, unsupported architecture).
// dequantize_all: every tensor to float32 (the reference path).
GgufModelWeights load_gguf_weights(const std::filesystem::path& path, bool dequantize_all = false);

}  // namespace tandem::models
