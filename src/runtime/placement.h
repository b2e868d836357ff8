// The placement planner: which of a model's layers go on the GPU, from byte
// counts alone (pure logic, no device calls), plus the start-up decision of
// what this build can honestly do with a model's `placement:` request.
//
// Split order. The GPU gets a suffix: the output head first, then the last
// layers, counting backwards (llama.cpp's order too). Reasons:
//  * one crossing per step: CPU layers run first, the hidden state (a few KB
//    per token) moves to the GPU once, and the GPU part ends at the logits, so
//    a later GPU sampler reads them where they are;
//  * the head (vocab x hidden, the largest single matrix of small models:
//    about 0.5 GB of Llama-3.2-1B's 2.5 GB in BF16) is read in full every
//    decode step, and every byte moved to the faster memory saves the same time
//    whichever matrix it belongs to, so the biggest one goes first and frees
//    the most CPU bandwidth;
//  * the token embedding stays on the CPU: a lookup reads a few rows, not the
//    table, so it is cheap there and its GPU memory is better spent on layers.
// A layer's KV cache lives with the layer, so each GPU layer also costs its
// share of the KV budget.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::runtime {

enum class PlacementMode {
  kCpu,     // everything on the CPU
  kGpu,     // everything on the GPU, or an error
  kAuto,    // as many layers on the GPU as fit, the rest on the CPU
  kLayers,  // exactly gpu_layers layers (and the head) on the GPU, or an error
};

struct PlacementInput {
  std::vector<uint64_t> layer_bytes;  // weights of each transformer block, in order
  uint64_t embedding_bytes = 0;       // token embedding table (stays on the CPU)
  uint64_t head_bytes = 0;            // final norm + output head (a copy of the table when tied)
  uint64_t kv_bytes_per_token_layer = 0;  // K and V of one token in one layer
  int64_t kv_tokens = 0;                  // KV budget: tokens the cache must hold
  uint64_t gpu_free_bytes = 0;            // free device memory now
  uint64_t margin_bytes = 0;              // kept free: CUDA context, cuBLAS workspace, activations
  PlacementMode mode = PlacementMode::kAuto;
  int gpu_layers = 0;  // with kLayers
};

struct PlacementPlan {
  int n_layers = 0;
  int gpu_layers = 0;        // layers [first_gpu_layer, n_layers) are on the GPU
  int first_gpu_layer = 0;   // == n_layers when none
  bool head_on_gpu = false;  // with any GPU layer
  uint64_t gpu_weight_bytes = 0, gpu_kv_bytes = 0;
  uint64_t cpu_weight_bytes = 0, cpu_kv_bytes = 0;
  std::string reason;   // one line: what was placed where and why
  std::string warning;  // non-empty when the request could not be met in full (auto)
};

// Plans a placement. Throws tandem::Error when kGpu or kLayers cannot be met
// (the message gives the bytes needed, the bytes available, and what fits), or
// when gpu_layers is out of range.
PlacementPlan plan_placement(const PlacementInput& in);

// What the GPU side can do at start-up: a device (cuda_available) and a GPU
// forward pass. runtime::probe_gpu() fills it for this build.
struct GpuProbe {
  bool device = false;
  std::string why_not;  // when !device: cuda_available()'s reason
  bool forward_pass = false;
};
GpuProbe probe_gpu();

struct StartupPlacement {
  bool on_gpu = false;
  std::string warning;  // to log when auto fell back to the CPU
};

// The start-up decision for one model: cpu and {gpu_layers: 0} run on the CPU;
// auto runs on the CPU with a warning saying why when the GPU side cannot run
// it; gpu and {gpu_layers: N > 0} are an error naming the reason. `what`
// prefixes messages (e.g. "tandem.yaml: model 'x'").
StartupPlacement resolve_startup_placement(PlacementMode mode, int gpu_layers, const GpuProbe& gpu,
                                           const std::string& what);

}  // namespace tandem::runtime
