// The real binary, run as a user would: outputs on stdout, logs on stderr,
// one-line errors and a non-zero exit on bad input.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

namespace tandem {
namespace {

using testing::run_command;

std::string tandem() { return TANDEM_BINARY; }
std::string demo() { return (testing::source_dir() / "models" / "demo").string(); }
std::string fixture(const char* n) { return (testing::shared_dir() / "fixtures/hf" / n).string(); }

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(Cli, RunPrintsGreedyIdsAsJson) {
  auto r = run_command(tandem() + " run --model " + demo() + " --prompt-ids 1104,269 -n 8 --print-ids --threads 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "[1212, 592, 294, 269, 1212, 592, 14, 199]\n");
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
}

TEST(Cli, RunPrintsText) {
  auto r = run_command(tandem() + " run --model " + demo() + " --prompt 'Return the' -n 6");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, " current value of the current value\n");
}

TEST(Cli, SamplingWithSeedIsRepeatable) {
  std::string cmd = tandem() + " run --model " + demo() +
                    " --prompt 'Args:' -n 16 --temperature 0.9 --top-k 40 --top-p 0.95 --min-p 0.01 "
                    "--repetition-penalty 1.1 --seed 11 --print-ids";
  auto a = run_command(cmd), b = run_command(cmd);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  auto c = run_command(tandem() + " run --model " + demo() + " --prompt 'Args:' -n 16 --temperature 0.9 --seed 12 --print-ids");
  EXPECT_NE(a.out, c.out);
}

TEST(Cli, LogitsWritesEveryPosition) {
  testing::TempDir tmp;
  auto out = (tmp / "l.safetensors").string();
  auto r = run_command(tandem() + " logits --model " + fixture("qwen2") + " --ids 5,6,7 --out " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  auto t = testing::read_f32(out, "logits");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{3, 512}));
}

TEST(Cli, InfoDescribesTheModel) {
  auto r = run_command(tandem() + " info --model " + fixture("gemma2"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("gemma2"), std::string::npos);
  EXPECT_NE(r.out.find("2 sliding-window, 1 full"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("parameters:"), std::string::npos);
}

struct BadCase {
  std::string args;
  std::string expect;  // fragment of the error
};

TEST(Cli, BadInputGivesOneLineErrorAndNonZeroExit) {
  testing::TempDir tmp;
  std::filesystem::create_directories(tmp / "trunc");
  std::filesystem::copy_file(fixture("llama") + "/config.json", tmp / "trunc" / "config.json");
  std::string whole = testing::read_file(fixture("llama") + "/model.safetensors");
  testing::write_file(tmp / "trunc" / "model.safetensors", whole.substr(0, whole.size() - 1000));
  std::filesystem::create_directories(tmp / "garbage");
  std::filesystem::copy_file(fixture("llama") + "/config.json", tmp / "garbage" / "config.json");
  testing::write_file(tmp / "garbage" / "model.safetensors", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
  const std::vector<BadCase> cases = {
      {"run --model /nonexistent --prompt-ids 1", "/nonexistent"},
      {"run --model " + fixture("llama") + " --prompt-ids 1,99999 --print-ids", "99999"},
      {"run --model " + fixture("llama") + " --prompt-ids 1,x --print-ids", "--prompt-ids"},
      {"run --model " + demo() + " --prompt hi --temperature -1", "temperature"},
      {"run --model " + demo() + " --prompt hi --top-p 2", "top_p"},
      {"logits --model " + (tmp / "trunc").string() + " --ids 1 --out " + (tmp / "x").string(), "out of range"},
      {"info --model " + (tmp / "garbage").string(), "header length"},
      {"logits --model " + fixture("llama") + " --ids 1,512 --out " + (tmp / "x").string(), "512"},
  };
  for (const auto& c : cases) {
    auto r = run_command(tandem() + " " + c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_LT(r.status, 128) << "crashed: " << c.args;
    EXPECT_EQ(count_lines(r.err), 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
  }
}

// The CUDA kernels may be built, but no model runs on a GPU yet: a config that pins
// one is refused at start-up with the reason, before anything binds a port.
TEST(Cli, ServeRefusesGpuPlacementItCannotRun) {
  testing::TempDir tmp;
  for (const char* placement : {"gpu", "{gpu_layers: 2}"}) {
    const auto cfg = tmp / "tandem.yaml";
    std::ofstream(cfg) << "models:\n  - name: demo\n    path: " << demo() << "\n    placement: " << placement
                       << "\npipelines:\n  - name: p\n    model: demo\n    steps:\n      - {name: t, type: generate}\n";
    auto r = run_command(tandem() + " serve --config " + cfg.string());
    EXPECT_NE(r.status, 0) << placement;
    EXPECT_NE(r.err.find("model 'demo': placement"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("cannot be met"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("use placement: cpu or auto"), std::string::npos) << r.err;
  }
}

TEST(Cli, UsageErrorsExitNonZero) {
  EXPECT_NE(run_command(tandem() + " run").status, 0);
  EXPECT_NE(run_command(tandem() + " frobnicate").status, 0);
  EXPECT_NE(run_command(tandem() + " run --model " + demo()).status, 0);
}

}  // namespace
}  // namespace tandem
