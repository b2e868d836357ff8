#include "runtime/placement.h"

#include <cstdio>

#include "base/error.h"
#include "kernels/cuda/cuda_backend.h"

namespace tandem::runtime {

namespace {

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB",
                static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

struct Cost {
  uint64_t weights = 0, kv = 0;
  uint64_t total() const { return weights + kv; }
};

// GPU bytes of the head plus the last `l` layers with their KV (nothing for l = 0).
Cost gpu_cost(const PlacementInput& in, int l) {
  Cost c;
  if (l == 0) return c;
  const int n = static_cast<int>(in.layer_bytes.size());
  c.weights = in.head_bytes;
  for (int i = n - l; i < n; ++i) c.weights += in.layer_bytes[static_cast<size_t>(i)];
  c.kv =
      static_cast<uint64_t>(l) * in.kv_bytes_per_token_layer * static_cast<uint64_t>(in.kv_tokens);
  return c;
}

uint64_t usable(const PlacementInput& in) {
  return in.gpu_free_bytes > in.margin_bytes ? in.gpu_free_bytes - in.margin_bytes : 0;
}

// The most layers whose GPU cost fits (costs grow with l, so the first miss ends it).
int largest_fit(const PlacementInput& in) {
  const int n = static_cast<int>(in.layer_bytes.size());
  const uint64_t cap = usable(in);
  int best = 0;
  for (int l = 1; l <= n; ++l) {
    if (gpu_cost(in, l).total() > cap) break;
    best = l;
  }
  return best;
}

PlacementPlan make_plan(const PlacementInput& in, int l) {
  PlacementPlan p;
  p.n_layers = static_cast<int>(in.layer_bytes.size());
  p.gpu_layers = l;
  p.first_gpu_layer = p.n_layers - l;
  p.head_on_gpu = l > 0;
  const Cost g = gpu_cost(in, l);
  uint64_t layers_total = 0;
  for (const uint64_t b : in.layer_bytes) layers_total += b;
  const uint64_t gpu_layer_weights = l > 0 ? g.weights - in.head_bytes : 0;
  p.gpu_weight_bytes = g.weights;
  p.gpu_kv_bytes = g.kv;
  p.cpu_weight_bytes =
      in.embedding_bytes + (layers_total - gpu_layer_weights) + (p.head_on_gpu ? 0 : in.head_bytes);
  p.cpu_kv_bytes = static_cast<uint64_t>(p.n_layers - l) * in.kv_bytes_per_token_layer *
                   static_cast<uint64_t>(in.kv_tokens);
  return p;
}

std::string need_message(const PlacementInput& in, int l) {
  const Cost c = gpu_cost(in, l);
  return gib(c.total()) + " on the GPU (weights " + gib(c.weights) + ", KV " + gib(c.kv) + " for " +
         std::to_string(in.kv_tokens) + " tokens) but " + gib(in.gpu_free_bytes) + " is free and " +
         gib(in.margin_bytes) + " is kept as a margin";
}

}  // namespace

PlacementPlan plan_placement(const PlacementInput& in) {
  const int n = static_cast<int>(in.layer_bytes.size());
  if (n == 0) throw Error("placement: the model has no layers");
  if (in.kv_tokens < 0) throw Error("placement: negative KV token budget");
  switch (in.mode) {
    case PlacementMode::kCpu: {
      PlacementPlan p = make_plan(in, 0);
      p.reason = "placement cpu: all " + std::to_string(n) + " layers on the CPU";
      return p;
    }
    case PlacementMode::kGpu: {
      if (gpu_cost(in, n).total() > usable(in)) {
        const int fit = largest_fit(in);
        throw Error("placement gpu: the model needs " + need_message(in, n) + "; " +
                    std::to_string(fit) + " of " + std::to_string(n) +
                    " layers would fit (use placement: auto or {gpu_layers: " +
                    std::to_string(fit) + "}, or a smaller KV budget)");
      }
      PlacementPlan p = make_plan(in, n);
      p.reason = "placement gpu: all " + std::to_string(n) + " layers and the head on the GPU (" +
                 gib(p.gpu_weight_bytes + p.gpu_kv_bytes) + ")";
      return p;
    }
    case PlacementMode::kLayers: {
      if (in.gpu_layers < 0 || in.gpu_layers > n) {
        throw Error("placement: gpu_layers must be in 0.." + std::to_string(n) +
                    " for this model, got " + std::to_string(in.gpu_layers));
      }
      const int l = in.gpu_layers;
      if (l > 0 && gpu_cost(in, l).total() > usable(in)) {
        throw Error("placement gpu_layers " + std::to_string(l) + ": needs " + need_message(in, l) +
                    "; " + std::to_string(largest_fit(in)) + " layers would fit");
      }
      PlacementPlan p = make_plan(in, l);
      p.reason = "placement gpu_layers " + std::to_string(l) + ": layers " + std::to_string(n - l) +
                 ".." + std::to_string(n - 1) + (l > 0 ? " and the head" : "") +
                 " on the GPU, the rest on the CPU";
      if (l == 0)
        p.reason = "placement gpu_layers 0: all " + std::to_string(n) + " layers on the CPU";
      return p;
    }
    case PlacementMode::kAuto:
      break;
  }
  const int l = largest_fit(in);
  PlacementPlan p = make_plan(in, l);
  if (l == n) {
    p.reason = "placement auto: all " + std::to_string(n) +
               " layers and the head fit on the GPU (" + gib(p.gpu_weight_bytes + p.gpu_kv_bytes) +
               " of " + gib(usable(in)) + " usable)";
  } else if (l > 0) {
    p.reason = "placement auto: layers " + std::to_string(n - l) + ".." + std::to_string(n - 1) +
               " and the head on the GPU, layers 0.." + std::to_string(n - l - 1) + " on the CPU";
    p.warning = "placement auto: only " + std::to_string(l) + " of " + std::to_string(n) +
                " layers fit on the GPU (the whole model needs " + need_message(in, n) +
                "); the CPU layers will bound decode speed";
  } else {
    p.reason = "placement auto: all " + std::to_string(n) + " layers on the CPU";
    p.warning = usable(in) == 0
                    ? "placement auto: no usable GPU memory (" + gib(in.gpu_free_bytes) +
                          " free, " + gib(in.margin_bytes) + " margin); running on the CPU"
                    : "placement auto: not even the head and one layer fit on the GPU (" +
                          need_message(in, 1) + "); running on the CPU";
  }
  return p;
}

GpuProbe probe_gpu() {
  GpuProbe g;
  g.device = kernels::cuda::cuda_available(&g.why_not);
  // The CUDA kernels exist, but Model::forward has no GPU path yet (issue #7).
  g.forward_pass = false;
  return g;
}

StartupPlacement resolve_startup_placement(PlacementMode mode, int gpu_layers, const GpuProbe& gpu,
                                           const std::string& what) {
  StartupPlacement s;
  const bool wants_gpu =
      mode == PlacementMode::kGpu || (mode == PlacementMode::kLayers && gpu_layers > 0);
  if (mode == PlacementMode::kCpu || (mode == PlacementMode::kLayers && gpu_layers == 0)) return s;
  std::string why;
  if (!gpu.device) {
    why = "no CUDA device: " + gpu.why_not;
  } else if (!gpu.forward_pass) {
    why =
        "the GPU forward pass is not implemented yet (the CUDA kernels exist, Model::forward does "
        "not use them; "
        "issue #7)";
  }
  if (why.empty()) {
    s.on_gpu = true;
    return s;
  }
  if (wants_gpu) {
    throw Error(what + ": placement " +
                (mode == PlacementMode::kGpu ? std::string("gpu")
                                             : "{gpu_layers: " + std::to_string(gpu_layers) + "}") +
                " cannot be met: " + why + "; use placement: cpu or auto");
  }
  s.warning = what + ": placement auto runs on the CPU: " + why;
  return s;
}

}  // namespace tandem::runtime
