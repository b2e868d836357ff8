// HF checkpoint -> GGUF export (models/gguf_export.h), checked by loading the written
// file back through our GGUF loader: the same logits as the Hugging Face folder (f32
// exactly up to summation order, f16 nearly, q8_0/q4_0/q5_0 within their quantization
// error), and a vocabulary that encodes text exactly as the original tokenizer.json.
#include "models/gguf_export.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "base/thread_pool.h"
#include "engine/model_tokenizer.h"
#include "formats/gguf.h"
#include "kernels/cpu/isa.h"
#include "models/model.h"
#include "models/synth.h"
#include "models/logits_util.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

using models::ExportType;
using testing::TempDir;

std::filesystem::path demo_dir() { return testing::source_dir() / "models" / "demo"; }
std::filesystem::path hf_fixture(const std::string& name) { return testing::shared_dir() / "fixtures" / "hf" / name; }

// Largest relative L2 distance between two models' logits over the prompts.
double worst_distance(const models::Model& a, const models::Model& b, const std::vector<std::vector<int32_t>>& prompts) {
  ThreadPool pool(2);
  double worst = 0;
  for (const auto& p : prompts) {
    const auto la = testing::logits_all(a, p, pool);
    const auto lb = testing::logits_all(b, p, pool);
    worst = std::max(worst, testing::rel_l2(la.data(), lb.data(), la.size()));
  }
  return worst;
}

// Largest relative L2 distance over the prompts between the HF folder and its GGUF export.
// The HF model keeps float32 RoPE frequencies (exact_buffers), as GGUF files do.
double export_distance(const std::filesystem::path& dir, ExportType type, const std::vector<std::vector<int32_t>>& prompts,
                       std::string* arch = nullptr) {
  TempDir tmp;
  const auto out = tmp / "m.gguf";
  models::ExportOptions o;
  o.type = type;
  o.threads = 2;
  const auto report = models::export_gguf(dir, out, o);
  if (arch) *arch = report.architecture;
  models::LoadOptions lo;
  lo.exact_buffers = true;
  auto hf = models::Model::load(dir, lo);
  // The file's round trip, not the format's default numerics: a bf16 GGUF would
  // otherwise round its activations as llama.cpp does (see Bf16GgufRoundsActivationsByDefault).
  models::LoadOptions glo;
  glo.bf16_activations = false;
  auto gg = models::Model::load(out, glo);
  EXPECT_EQ(gg->vocab_size(), hf->vocab_size());
  return worst_distance(*gg, *hf, prompts);
}

std::vector<std::vector<int32_t>> fixture_prompts(const std::string& name, size_t max_len = 1000) {
  auto ref = testing::read_json(hf_fixture(name) / "reference.json");
  std::vector<std::vector<int32_t>> ps;
  for (const auto& p : ref["prompts"]) {
    auto v = p.get<std::vector<int32_t>>();
    if (v.size() <= max_len) ps.push_back(v);
  }
  return ps;
}

const std::vector<std::vector<int32_t>> kDemoPrompts = {
    {1104, 269}, {5, 17, 300, 4000, 8191, 0, 42, 42, 42, 7, 1, 2, 3, 900, 901, 902, 77, 1000, 2000, 3000}};

TEST(GgufExport, DemoModelF32AndF16MatchTheFolder) {
  const double f32 = export_distance(demo_dir(), ExportType::kF32, kDemoPrompts);
  // bf16 -> f16 is exact for every value in f16's normal range; only tiny weights round.
  const double f16 = export_distance(demo_dir(), ExportType::kF16, kDemoPrompts);
  const double bf16 = export_distance(demo_dir(), ExportType::kBF16, kDemoPrompts);
  EXPECT_LT(f32, 1e-5);
  EXPECT_LT(f16, 1e-5);
  EXPECT_LT(bf16, 1e-5);
  std::printf("demo export rel L2: f32 %.2e f16 %.2e bf16 %.2e\n", f32, f16, bf16);
}

// LoadOptions::bf16_activations unset: a model folder keeps float32 parity, a
// GGUF file computes as llama.cpp does (activations rounded once to bf16).
TEST(GgufExport, Bf16GgufRoundsActivationsByDefault) {
  TempDir tmp;
  models::ExportOptions o;
  o.type = ExportType::kBF16;
  o.threads = 2;
  models::export_gguf(demo_dir(), tmp / "m.gguf", o);
  auto folder = models::Model::load(demo_dir());
  auto gguf = models::Model::load(tmp / "m.gguf");
  EXPECT_FALSE(folder->bf16_activations());
  EXPECT_TRUE(gguf->bf16_activations());
  models::LoadOptions f32;
  f32.bf16_activations = false;
  EXPECT_FALSE(models::Model::load(tmp / "m.gguf", f32)->bf16_activations());
  models::LoadOptions b16;
  b16.bf16_activations = true;
  EXPECT_TRUE(models::Model::load(demo_dir(), b16)->bf16_activations());
  if (kernels::active_isa() != kernels::Isa::kAvx512 || !kernels::cpu_has_avx512_bf16()) {
    GTEST_SKIP() << "no AVX512_BF16 kernel at the active ISA level: the rounding changes no logits here";
  }
  models::LoadOptions lo;
  lo.exact_buffers = true;
  auto hf = models::Model::load(demo_dir(), lo);
  const double worst = worst_distance(*gguf, *hf, kDemoPrompts);
  std::printf("bf16 GGUF, default activations: rel L2 %.3g from the float32 folder\n", worst);
  EXPECT_LT(worst, 2e-2);
  EXPECT_GT(worst, 1e-4) << "the activations were not rounded";
}

TEST(GgufExport, DemoModelQuantizedWithinTheirError) {
  // Measured on the demo model: q8_0 0.017, q5_0 0.12, q4_0 0.25 relative L2; llama.cpp's own
  // files of the fixture models are in the same range (summary.json: Q8_0 0.016-0.031,
  // Q5_0 0.09-0.15, Q4_0 0.18-0.30). Each bit less should about double the error.
  const double q8 = export_distance(demo_dir(), ExportType::kQ8_0, kDemoPrompts);
  const double q5 = export_distance(demo_dir(), ExportType::kQ5_0, kDemoPrompts);
  const double q4 = export_distance(demo_dir(), ExportType::kQ4_0, kDemoPrompts);
  EXPECT_LT(q8, 0.04);
  EXPECT_LT(q5, 0.18);
  EXPECT_LT(q4, 0.35);
  EXPECT_LT(q8, q5 / 3);
  EXPECT_LT(q5, q4 / 1.5);
  std::printf("demo export rel L2: q8_0 %.4f q5_0 %.4f q4_0 %.4f\n", q8, q5, q4);
}

TEST(GgufExport, KQuants) {
  // The demo's hidden 288 is not a multiple of 256, so most rows fall back (q4_K -> q5_0,
  // q6_K -> q8_0); only ffn_down (768 wide) keeps K-quants. llama.cpp's own fixture files:
  // Q4_K_M 0.15-0.24, Q6_K 0.04-0.08 (summary.json).
  const double q4k = export_distance(demo_dir(), ExportType::kQ4_K, kDemoPrompts);
  const double q6k = export_distance(demo_dir(), ExportType::kQ6_K, kDemoPrompts);
  EXPECT_LT(q4k, 0.3);
  EXPECT_LT(q6k, 0.08);
  std::printf("demo export rel L2: q4_k %.4f q6_k %.4f\n", q4k, q6k);
}

// Every family the loader reads, with the fixture prompts (1, 9 and 70 tokens).
TEST(GgufExport, HfFixturesF32MatchTheFolder) {
  struct C {
    std::string name, arch;
  };
  for (const C& c : std::vector<C>{{"llama", "llama"}, {"llama_tied", "llama"}, {"qwen2", "qwen2"}, {"qwen3", "qwen3"}}) {
    SCOPED_TRACE(c.name);
    std::string arch;
    const double f32 = export_distance(hf_fixture(c.name), ExportType::kF32, fixture_prompts(c.name), &arch);
    const double f16 = export_distance(hf_fixture(c.name), ExportType::kF16, fixture_prompts(c.name));
    EXPECT_LT(f32, 1e-5);
    EXPECT_EQ(arch, c.arch);
    EXPECT_LT(f16, 1e-5);  // the fixtures' bf16 weights are all exact in f16
    std::printf("%s export rel L2: f32 %.2e f16 %.2e\n", c.name.c_str(), f32, f16);
  }
  // Mistral becomes arch llama, which has no sliding window: equal within the window (16).
  EXPECT_LT(export_distance(hf_fixture("mistral"), ExportType::kF32, fixture_prompts("mistral", 16)), 1e-5);
}

TEST(GgufExport, MetadataFollowsLlamaCpp) {
  TempDir tmp;
  models::ExportOptions o;
  o.type = ExportType::kQ8_0;
  models::export_gguf(hf_fixture("llama"), tmp / "l.gguf", o);
  auto f = formats::GgufFile::open(tmp / "l.gguf");
  const auto& g = f->gguf();
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(g.get_string("general.name"), "llama");
  EXPECT_EQ(g.get_int("general.file_type"), 7);
  EXPECT_EQ(g.get_int("llama.embedding_length"), 128);
  EXPECT_EQ(g.get_int("llama.block_count"), 3);
  EXPECT_EQ(g.get_int("llama.feed_forward_length"), 256);
  EXPECT_EQ(g.get_int("llama.attention.head_count"), 4);
  EXPECT_EQ(g.get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(g.get_int("llama.context_length"), 4096);
  EXPECT_EQ(g.get_int("llama.rope.dimension_count"), 32);
  EXPECT_EQ(g.find("llama.attention.key_length"), nullptr);  // head_dim == hidden / heads
  EXPECT_FLOAT_EQ(static_cast<float>(g.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_FLOAT_EQ(static_cast<float>(g.get_float("llama.rope.freq_base")), 500000.0f);
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "none");  // the fixture has no tokenizer
  EXPECT_EQ(g.get_int("tokenizer.ggml.eos_token_id"), 2);
  // llama3 RoPE scaling as llama.cpp stores it; 1-D tensors f32; untied head.
  ASSERT_NE(g.find_tensor("rope_freqs.weight"), nullptr);
  EXPECT_EQ(g.find_tensor("rope_freqs.weight")->ne, std::vector<int64_t>{16});
  EXPECT_EQ(g.find_tensor("blk.0.attn_norm.weight")->type, static_cast<uint32_t>(GgmlType::kF32));
  EXPECT_EQ(g.find_tensor("blk.2.ffn_down.weight")->type, static_cast<uint32_t>(GgmlType::kQ8_0));
  EXPECT_EQ(g.find_tensor("blk.0.attn_k.weight")->ne, (std::vector<int64_t>{128, 64}));
  EXPECT_NE(g.find_tensor("output.weight"), nullptr);

  models::export_gguf(hf_fixture("qwen3"), tmp / "q.gguf", o);
  auto q = formats::GgufFile::open(tmp / "q.gguf");
  EXPECT_EQ(q->gguf().get_int("qwen3.attention.key_length"), 48);
  EXPECT_EQ(q->gguf().get_int("qwen3.attention.value_length"), 48);
  EXPECT_EQ(q->gguf().find_tensor("output.weight"), nullptr);  // tied
  EXPECT_NE(q->gguf().find_tensor("blk.1.attn_q_norm.weight"), nullptr);
}

TEST(GgufExport, RecipeTable) {
  using models::recipe_tensor_type;
  const std::vector<int64_t> m{2048, 2048}, odd{288, 512}, v{2048};
  // 1-D: f32 always.
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "blk.0.attn_norm.weight", v, 0, 16, false), GgmlType::kF32);
  EXPECT_EQ(recipe_tensor_type(ExportType::kF16, "blk.0.attn_q.bias", v, 0, 16, false), GgmlType::kF32);
  // q4_k: head q6_k, attn_v/ffn_down of the first/last eighth and every third layer q6_k.
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "output.weight", m, -1, 16, true), GgmlType::kQ6_K);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "token_embd.weight", m, -1, 16, true), GgmlType::kQ6_K);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "token_embd.weight", m, -1, 16, false), GgmlType::kQ4_K);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "blk.0.attn_v.weight", m, 0, 16, false), GgmlType::kQ6_K);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "blk.3.attn_v.weight", m, 3, 16, false), GgmlType::kQ4_K);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "blk.4.ffn_down.weight", m, 4, 16, false), GgmlType::kQ6_K);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "blk.15.ffn_down.weight", m, 15, 16, false), GgmlType::kQ6_K);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "blk.4.ffn_up.weight", m, 4, 16, false), GgmlType::kQ4_K);
  // As in llama.cpp's 2-layer Q4_K_M fixtures: layer 1 of 2 gets more bits.
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "blk.1.attn_v.weight", m, 1, 2, false), GgmlType::kQ6_K);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "blk.0.attn_v.weight", m, 0, 2, false), GgmlType::kQ4_K);
  // Rows K-quants cannot hold fall back: q4_K -> q5_0, q6_K -> q8_0.
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "blk.3.attn_q.weight", odd, 3, 16, false), GgmlType::kQ5_0);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_K, "output.weight", odd, -1, 16, true), GgmlType::kQ8_0);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ6_K, "blk.0.ffn_up.weight", odd, 0, 16, false), GgmlType::kQ8_0);
  // Non-K types: the head of q4_0/q5_0 is q6_K (q8_0 where 256 does not divide its
  // rows); rows not a multiple of 32 become f16.
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_0, "output.weight", m, -1, 16, true), GgmlType::kQ6_K);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ5_0, "output.weight", odd, -1, 16, true), GgmlType::kQ8_0);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ4_0, "blk.0.attn_v.weight", m, 0, 16, false), GgmlType::kQ4_0);
  EXPECT_EQ(recipe_tensor_type(ExportType::kQ8_0, "blk.0.attn_q.weight", {100, 64}, 0, 16, false), GgmlType::kF16);
  EXPECT_EQ(recipe_tensor_type(ExportType::kBF16, "output.weight", m, -1, 16, true), GgmlType::kBF16);
  EXPECT_EQ(models::parse_export_type("Q4_K_M"), ExportType::kQ4_K);
  EXPECT_EQ(models::parse_export_type("q5_0"), ExportType::kQ5_0);
  EXPECT_FALSE(models::parse_export_type("q3_k").has_value());
}

TEST(GgufExport, DemoVocabularyEncodesLikeTokenizerJson) {
  TempDir tmp;
  models::ExportOptions o;
  o.type = ExportType::kQ8_0;
  const auto r = models::export_gguf(demo_dir(), tmp / "d.gguf", o);
  EXPECT_TRUE(r.has_vocab);
  auto f = formats::GgufFile::open(tmp / "d.gguf");
  EXPECT_EQ(f->gguf().get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(f->gguf().get_array_size("tokenizer.ggml.tokens"), 8192u);
  EXPECT_EQ(f->gguf().get_int("tokenizer.ggml.eos_token_id"), 0);
  EXPECT_FALSE(f->gguf().get_bool_or("tokenizer.ggml.add_bos_token", true));
  auto a = engine::load_model_tokenizer(tmp / "d.gguf");
  auto b = tokenizer::Tokenizer::load(demo_dir());
  for (const std::string text :
       {"Return the", "def f(x):\n    \"\"\"Return x + 1.\n\n    Parameters\n    ----------\n", "  spaces   and\ttabs",
        "numbers 1234567 and 3.14159", "ünïcödé 日本語 🎉", "<|endoftext|>after the end<|endoftext|>", "",
        "it's we'll they've I'm"}) {
    EXPECT_EQ(a->encode(text, false), b->encode(text, false)) << text;
    EXPECT_EQ(a->encode(text, true), b->encode(text, true)) << text;
    EXPECT_EQ(a->decode(b->encode(text)), b->decode(b->encode(text))) << text;
  }
}

// Real Llama 3 and Qwen 3 tokenizers in a tiny model folder: the GGUF vocabulary (with the
// pre-tokenizer name guessed from the regex) reproduces Hugging Face's ids for every
// reference text.
TEST(GgufExport, RealTokenizersRoundTrip) {
  const auto tok_dir = testing::shared_dir() / "fixtures" / "tokenizers";
  const auto refs = testing::read_json(tok_dir / "reference_encodings.json");
  struct C {
    std::string name, pre;
    int64_t vocab;
  };
  for (const C& c : std::vector<C>{{"llama3", "llama-bpe", 128256}, {"qwen3", "qwen2", 151936}}) {
    SCOPED_TRACE(c.name);
    TempDir tmp;
    const auto model = tmp / "model";
    std::filesystem::create_directories(model);
    const std::string cmd = "gzip -dc '" + (tok_dir / c.name / "tokenizer.json.gz").string() + "' > '" +
                            (model / "tokenizer.json").string() + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    std::filesystem::copy_file(tok_dir / c.name / "tokenizer_config.json", model / "tokenizer_config.json");
    models::SynthPreset p;
    p.name = "tiny";
    p.config = {{"model_type", "llama"}, {"hidden_size", 32}, {"intermediate_size", 32}, {"num_hidden_layers", 1},
                {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"vocab_size", c.vocab},
                {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", true}, {"max_position_embeddings", 256}};
    p.generation_config = nlohmann::ordered_json::object();
    models::SynthOptions so;
    so.dtype = DType::kBF16;
    models::write_synth_model(p, model, so);
    models::ExportOptions o;
    o.type = ExportType::kF16;
    const auto r = models::export_gguf(model, tmp / "t.gguf", o);
    ASSERT_TRUE(r.has_vocab) << r.vocab_note;
    auto f = formats::GgufFile::open(tmp / "t.gguf");
    EXPECT_EQ(f->gguf().get_string("tokenizer.ggml.pre"), c.pre);
    EXPECT_TRUE(f->gguf().find("tokenizer.chat_template") != nullptr);
    auto tok = engine::load_model_tokenizer(tmp / "t.gguf");
    const auto& texts = refs["texts"];
    const auto& ids = refs["tokenizers"][c.name]["ids"];
    ASSERT_EQ(texts.size(), ids.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(tok->encode(texts[i].get<std::string>(), false), ids[i].get<std::vector<int32_t>>()) << i;
    }
  }
}

TEST(GgufExport, BadInputIsNamed) {
  TempDir tmp;
  auto expect_error = [&](const std::filesystem::path& dir, const std::string& needle) {
    try {
      models::export_gguf(dir, tmp / "x.gguf", {});
      FAIL() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(tmp / "x.gguf"));
  };
  expect_error(tmp / "missing", "not a model folder");
  expect_error(hf_fixture("gemma2"), "model_type 'gemma2' cannot be exported");
  // A tensor with the wrong shape.
  const auto bad = tmp / "bad";
  std::filesystem::create_directories(bad);
  std::filesystem::copy_file(hf_fixture("llama") / "config.json", bad / "config.json");
  std::vector<float> w(4, 0.0f);
  formats::write_safetensors(bad / "model.safetensors", {{"model.embed_tokens.weight", DType::kF32, {2, 2}, w.data()}});
  expect_error(bad, "model.embed_tokens.weight' has shape [2, 2]");
}

}  // namespace
}  // namespace tandem
