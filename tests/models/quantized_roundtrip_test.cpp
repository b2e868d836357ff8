// A model quantized at load (--quantize T) and the GGUF file `tandem quantize`
// writes from the same checkpoint hold the same blocks (checked by size here, by
// value through the logits), so they give the same logits once the file is read
// back (its tensors are used in place). Not bit for bit on every model: GGUF
// stores rms_norm_eps and rope_theta as float32 (config.json: double), which
// moves some logits by ~5e-8 relative.
#include <gtest/gtest.h>

#include "base/thread_pool.h"
#include "models/gguf_export.h"
#include "models/model.h"
#include "models/logits_util.h"
#include "test_util.h"

namespace tandem {
namespace {

TEST(QuantizedRoundTrip, LoadTimeQuantizationEqualsWrittenGguf) {
  ThreadPool pool(2);
  const std::vector<int32_t> ids = {1, 1104, 269, 42, 7, 300, 1500, 8000, 12, 99, 5};
  struct Case {
    std::filesystem::path dir;
    std::vector<int32_t> ids;
  };
  const std::vector<Case> cases = {
      {testing::source_dir() / "models" / "demo", ids},
      {testing::shared_dir() / "fixtures" / "hf" / "llama", {1, 5, 9, 200, 3, 77}},
      {testing::shared_dir() / "fixtures" / "hf" / "qwen2", {1, 5, 9, 200, 3, 77}},
  };
  const std::pair<DType, models::ExportType> types[] = {{DType::kQ8_0, models::ExportType::kQ8_0},
                                                        {DType::kQ4_K, models::ExportType::kQ4_K},
                                                        {DType::kQ6_K, models::ExportType::kQ6_K},
                                                        {DType::kQ4_0, models::ExportType::kQ4_0},
                                                        {DType::kQ5_0, models::ExportType::kQ5_0}};
  for (const Case& c : cases) {
    for (const auto& [dt, et] : types) {
      SCOPED_TRACE(c.dir.string() + " " + std::string(dtype_name(dt)));
      testing::TempDir tmp;
      models::ExportOptions o;
      o.type = et;
      models::export_gguf(c.dir, tmp / "m.gguf", o);
      models::LoadOptions lo;
      lo.quantize = dt;
      lo.exact_buffers = true;  // GGUF keeps RoPE frequencies in float32
      auto mem = models::Model::load(c.dir, lo);
      auto file = models::Model::load(tmp / "m.gguf");
      EXPECT_EQ(mem->info().matrix_bytes, file->info().matrix_bytes);
      const auto a = testing::logits_all(*mem, c.ids, pool);
      const auto b = testing::logits_all(*file, c.ids, pool);
      ASSERT_EQ(a.size(), b.size());
      EXPECT_LT(testing::rel_l2(a.data(), b.data(), a.size()), 1e-6);
    }
  }
}

}  // namespace
}  // namespace tandem
