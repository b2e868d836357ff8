// The placement planner on byte counts: which suffix of layers (and the head)
// goes on the GPU for each request, the bytes on each side, the errors for
// requests that cannot be met, and the start-up decision without a GPU path.
#include "runtime/placement.h"

#include <gtest/gtest.h>

#include <string>

#include "base/error.h"

namespace tandem {
namespace {

using runtime::PlacementInput;
using runtime::PlacementMode;
using runtime::PlacementPlan;

constexpr uint64_t kMiB = 1024 * 1024;

// 16 layers of 100 MiB, a 200 MiB embedding and a 250 MiB head, 1 MiB of KV per
// 1024 tokens per layer (1 KiB per token per layer), 4096 tokens: 4 MiB KV per layer.
PlacementInput model(PlacementMode mode, uint64_t free_mib, int gpu_layers = 0) {
  PlacementInput in;
  in.layer_bytes.assign(16, 100 * kMiB);
  in.embedding_bytes = 200 * kMiB;
  in.head_bytes = 250 * kMiB;
  in.kv_bytes_per_token_layer = 1024;
  in.kv_tokens = 4096;
  in.gpu_free_bytes = free_mib * kMiB;
  in.margin_bytes = 50 * kMiB;
  in.mode = mode;
  in.gpu_layers = gpu_layers;
  return in;
}

constexpr uint64_t kAllWeights = 200 + 250 + 16 * 100;  // MiB
constexpr uint64_t kAllKv = 16 * 4;                     // MiB

// Whatever the split, every byte is on exactly one side.
void expect_conserved(const PlacementPlan& p) {
  EXPECT_EQ(p.gpu_weight_bytes + p.cpu_weight_bytes, kAllWeights * kMiB);
  EXPECT_EQ(p.gpu_kv_bytes + p.cpu_kv_bytes, kAllKv * kMiB);
  EXPECT_EQ(p.first_gpu_layer + p.gpu_layers, p.n_layers);
  EXPECT_EQ(p.head_on_gpu, p.gpu_layers > 0);
}

TEST(Placement, CpuKeepsEverythingOnTheCpu) {
  const PlacementPlan p = runtime::plan_placement(model(PlacementMode::kCpu, 80000));
  EXPECT_EQ(p.n_layers, 16);
  EXPECT_EQ(p.gpu_layers, 0);
  EXPECT_EQ(p.first_gpu_layer, 16);
  EXPECT_EQ(p.gpu_weight_bytes, 0u);
  EXPECT_TRUE(p.warning.empty());
  expect_conserved(p);
}

TEST(Placement, GpuPutsAllLayersAndTheHeadThereWhenTheyFit) {
  // Needs 250 + 1600 + 64 = 1914 MiB; 1964 free minus the 50 MiB margin is exactly that.
  const PlacementPlan p = runtime::plan_placement(model(PlacementMode::kGpu, 1964));
  EXPECT_EQ(p.gpu_layers, 16);
  EXPECT_EQ(p.first_gpu_layer, 0);
  EXPECT_TRUE(p.head_on_gpu);
  EXPECT_EQ(p.gpu_weight_bytes, (250 + 1600) * kMiB);
  EXPECT_EQ(p.gpu_kv_bytes, 64 * kMiB);
  EXPECT_EQ(p.cpu_weight_bytes, 200 * kMiB);  // the embedding stays on the CPU
  EXPECT_EQ(p.cpu_kv_bytes, 0u);
  expect_conserved(p);
}

TEST(Placement, GpuThatDoesNotFitIsAnErrorSayingWhatFits) {
  try {
    runtime::plan_placement(model(PlacementMode::kGpu, 1963));  // one MiB short
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("placement gpu"), std::string::npos) << m;
    EXPECT_NE(m.find("15 of 16 layers would fit"), std::string::npos) << m;
    EXPECT_NE(m.find("1.87 GiB on the GPU"), std::string::npos) << m;  // 1914 MiB
  }
}

TEST(Placement, AutoTakesTheLargestSuffixThatFits) {
  // Head 250 + per layer 104 MiB: 1000 usable MiB hold 7 layers (978), not 8 (1082).
  const PlacementPlan p = runtime::plan_placement(model(PlacementMode::kAuto, 1050));
  EXPECT_EQ(p.gpu_layers, 7);
  EXPECT_EQ(p.first_gpu_layer, 9);
  EXPECT_TRUE(p.head_on_gpu);
  EXPECT_EQ(p.gpu_weight_bytes, (250 + 700) * kMiB);
  EXPECT_EQ(p.gpu_kv_bytes, 28 * kMiB);
  EXPECT_EQ(p.cpu_kv_bytes, 36 * kMiB);
  EXPECT_NE(p.warning.find("only 7 of 16 layers"), std::string::npos) << p.warning;
  EXPECT_NE(p.reason.find("layers 9..15"), std::string::npos) << p.reason;
  expect_conserved(p);
}

TEST(Placement, AutoUsesOnlyFreeMemoryBeyondTheMargin) {
  // The same memory with a margin one layer larger places one layer less.
  PlacementInput in = model(PlacementMode::kAuto, 1050);
  in.margin_bytes = 154 * kMiB;
  EXPECT_EQ(runtime::plan_placement(in).gpu_layers, 6);
  // A larger KV budget costs GPU layers too: 16 MiB of KV per layer now.
  in = model(PlacementMode::kAuto, 1050);
  in.kv_tokens = 4096 * 4;
  EXPECT_EQ(runtime::plan_placement(in).gpu_layers, 6);  // 250 + 6 * 116 = 946 <= 1000 < 1062
}

TEST(Placement, AutoFitsEverythingWithoutAWarning) {
  const PlacementPlan p = runtime::plan_placement(model(PlacementMode::kAuto, 80000));
  EXPECT_EQ(p.gpu_layers, 16);
  EXPECT_TRUE(p.warning.empty()) << p.warning;
  expect_conserved(p);
}

TEST(Placement, AutoWithNoFreeMemoryStaysOnTheCpu) {
  for (const uint64_t free_mib : {0, 50, 300}) {  // nothing; only the margin; the head but no layer
    const PlacementPlan p = runtime::plan_placement(model(PlacementMode::kAuto, free_mib));
    EXPECT_EQ(p.gpu_layers, 0) << free_mib;
    EXPECT_FALSE(p.head_on_gpu);
    EXPECT_EQ(p.gpu_weight_bytes + p.gpu_kv_bytes, 0u);
    EXPECT_FALSE(p.warning.empty());
    expect_conserved(p);
  }
}

TEST(Placement, GpuLayersPlacesExactlyThatSuffix) {
  const PlacementPlan p = runtime::plan_placement(model(PlacementMode::kLayers, 80000, 4));
  EXPECT_EQ(p.gpu_layers, 4);
  EXPECT_EQ(p.first_gpu_layer, 12);
  EXPECT_EQ(p.gpu_weight_bytes, (250 + 400) * kMiB);
  expect_conserved(p);
  const PlacementPlan none = runtime::plan_placement(model(PlacementMode::kLayers, 80000, 0));
  EXPECT_EQ(none.gpu_layers, 0);
  expect_conserved(none);
}

TEST(Placement, GpuLayersOutOfRangeOrNotFittingIsAnError) {
  EXPECT_THROW(runtime::plan_placement(model(PlacementMode::kLayers, 80000, 17)), Error);
  EXPECT_THROW(runtime::plan_placement(model(PlacementMode::kLayers, 80000, -1)), Error);
  try {
    runtime::plan_placement(model(PlacementMode::kLayers, 1050, 8));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("7 layers would fit"), std::string::npos) << e.what();
  }
  PlacementInput empty = model(PlacementMode::kAuto, 1000);
  empty.layer_bytes.clear();
  EXPECT_THROW(runtime::plan_placement(empty), Error);
}

TEST(Placement, StartupWithoutAGpuPath) {
  runtime::GpuProbe no_device{false, "cudaGetDeviceCount: no CUDA device visible", false};
  const std::string what = "t.yaml: model 'm'";
  // cpu and gpu_layers 0 need nothing.
  EXPECT_FALSE(runtime::resolve_startup_placement(PlacementMode::kCpu, 0, no_device, what).on_gpu);
  EXPECT_TRUE(runtime::resolve_startup_placement(PlacementMode::kLayers, 0, no_device, what)
                  .warning.empty());
  // auto falls back to the CPU and says why.
  const auto a = runtime::resolve_startup_placement(PlacementMode::kAuto, 0, no_device, what);
  EXPECT_FALSE(a.on_gpu);
  EXPECT_NE(a.warning.find("no CUDA device visible"), std::string::npos) << a.warning;
  // gpu and gpu_layers N > 0 are start-up errors naming the reason.
  for (const auto& [mode, n] :
       {std::pair{PlacementMode::kGpu, 0}, std::pair{PlacementMode::kLayers, 3}}) {
    try {
      runtime::resolve_startup_placement(mode, n, no_device, what);
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("t.yaml: model 'm'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("no CUDA device visible"), std::string::npos)
          << e.what();
    }
  }
  // A device without the GPU forward pass is no better: the reason says so.
  runtime::GpuProbe device_only{true, "", false};
  EXPECT_THROW(runtime::resolve_startup_placement(PlacementMode::kGpu, 0, device_only, what),
               Error);
  EXPECT_NE(runtime::resolve_startup_placement(PlacementMode::kAuto, 0, device_only, what)
                .warning.find("forward pass"),
            std::string::npos);
  // Only a device with the forward pass puts a model on the GPU.
  runtime::GpuProbe full{true, "", true};
  EXPECT_TRUE(runtime::resolve_startup_placement(PlacementMode::kGpu, 0, full, what).on_gpu);
}

TEST(Placement, ProbeOfThisBuildIsHonest) {
  const runtime::GpuProbe g = runtime::probe_gpu();
  EXPECT_FALSE(g.forward_pass);  // flip with the test when Model::forward gains its GPU path
  if (!g.device) {
    EXPECT_FALSE(g.why_not.empty());
  }
}

}  // namespace
}  // namespace tandem
