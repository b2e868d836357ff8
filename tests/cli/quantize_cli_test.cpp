// `tandem quantize` and `tandem synth` as a user runs them: results on stdout, one-line
// errors and exit 1 on bad input.
#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "test_util.h"

namespace tandem {
namespace {

using testing::run_command;

std::string tandem() { return TANDEM_BINARY; }
std::string demo() { return (testing::source_dir() / "models" / "demo").string(); }

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(CliQuantize, WritesAGgufThatRuns) {
  testing::TempDir tmp;
  const auto out = (tmp / "demo-q8_0.gguf").string();
  auto r = run_command(tandem() + " quantize --model " + demo() + " --type q8_0 --out " + out + " --threads 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("architecture: llama"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("f32 17"), std::string::npos) << r.out;   // 8 layers x 2 norms + output_norm
  EXPECT_NE(r.out.find("q8_0 57"), std::string::npos) << r.out;  // 8 x 7 matrices + tied embedding
  EXPECT_NE(r.out.find("file size:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::to_string(std::filesystem::file_size(out)) + " bytes"), std::string::npos) << r.out;
  // The file runs, with its own vocabulary, and generates the demo's words.
  auto g = run_command(tandem() + " run --model " + out + " --prompt 'Return the' -n 4 --threads 2");
  ASSERT_EQ(g.status, 0) << g.err;
  EXPECT_FALSE(g.out.empty());
}

TEST(CliQuantize, BadInputIsOneLineAndExit1) {
  testing::TempDir tmp;
  const auto out = (tmp / "x.gguf").string();
  struct C {
    std::string args, needle;
  };
  for (const C& c : std::vector<C>{
           {" quantize --model " + (tmp / "nope").string() + " --type q8_0 --out " + out, "not a model folder"},
           {" quantize --model " + demo() + " --type q3_k --out " + out, "--type 'q3_k' is not one of f32, f16"},
           {" quantize --model " + demo() + " --type q8_0 --out " + (tmp / "x.bin").string(), "must end in .gguf"},
           {" quantize --model " + demo() + " --type f16 --out " + (tmp / "no/such/dir/x.gguf").string(), "x.gguf"},
           {" synth --preset llama-9b --out " + (tmp / "s").string(), "unknown synth preset 'llama-9b'"},
           {" synth --preset smollm2-135m --dtype f8 --out " + (tmp / "s").string(), "--dtype 'f8'"},
       }) {
    auto r = run_command(tandem() + c.args);
    EXPECT_EQ(r.status, 1) << c.args;
    EXPECT_EQ(count_lines(r.err), 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(CliQuantize, FolderWithoutTokenizerGivesAFileWithoutVocabulary) {
  testing::TempDir tmp;
  const auto out = (tmp / "q.gguf").string();
  const auto qwen2 = (testing::shared_dir() / "fixtures/hf/qwen2").string();
  auto r = run_command(tandem() + " quantize --model " + qwen2 + " --type f16 --out " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("vocabulary:   none (no tokenizer.json)"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("no tokenizer.json"), std::string::npos) << r.err;
  auto ids = run_command(tandem() + " run --model " + out + " --prompt-ids 5,6,7 -n 3 --print-ids --ignore-eos");
  ASSERT_EQ(ids.status, 0) << ids.err;
  auto text = run_command(tandem() + " run --model " + out + " --prompt hello -n 3");
  EXPECT_EQ(text.status, 1);
  EXPECT_NE(text.err.find("has no vocabulary"), std::string::npos) << text.err;
  EXPECT_EQ(count_lines(text.err), 1) << text.err;
}

}  // namespace
}  // namespace tandem
