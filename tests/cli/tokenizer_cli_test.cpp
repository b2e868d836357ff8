// tandem tokenize / detokenize / render-chat / run --chat, run as a user would: exact stdout,
// one-line errors and a non-zero exit on bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace tandem {
namespace {

using nlohmann::json;
using testing::run_command;

std::string tandem() { return TANDEM_BINARY; }
std::string demo() { return (testing::source_dir() / "models" / "demo").string(); }
std::filesystem::path tokenizers() { return testing::shared_dir() / "fixtures" / "tokenizers"; }

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// "[1, 2, 3]\n" -> "1,2,3", the form --ids takes.
std::string ids_arg(std::string json_line) {
  std::string out;
  for (char c : json_line) {
    if (c != '[' && c != ']' && c != ' ' && c != '\n') out += c;
  }
  return out;
}

void expect_round_trip(const std::string& tokenizer, const std::string& text) {
  auto enc = run_command(tandem() + " tokenize --tokenizer " + tokenizer + " --text '" + text + "'");
  ASSERT_EQ(enc.status, 0) << enc.err;
  ASSERT_EQ(count_lines(enc.out), 1) << enc.out;
  ASSERT_FALSE(json::parse(enc.out).empty());
  auto dec = run_command(tandem() + " detokenize --tokenizer " + tokenizer + " --ids " + ids_arg(enc.out));
  ASSERT_EQ(dec.status, 0) << dec.err;
  EXPECT_EQ(dec.out, text);
}

TEST(TokenizerCli, DemoModelRoundTrip) {
  expect_round_trip(demo(), "Return the current value.");
}

TEST(TokenizerCli, Gpt2MatchesReferenceIds) {
  const auto path = (tokenizers() / "gpt2" / "tokenizer.json").string();
  const json ref = json::parse(testing::read_file(tokenizers() / "reference_encodings.json"));
  auto r = run_command(tandem() + " tokenize --tokenizer " + path + " --text 'Hello world'");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(ref.at("texts")[0], "Hello world");
  EXPECT_EQ(json::parse(r.out), ref.at("tokenizers").at("gpt2").at("ids")[0]);
  expect_round_trip(path, "The quick brown fox jumps over the lazy dog.");
}

TEST(TokenizerCli, TextFileAndSentencePieceModel) {
  testing::TempDir tmp;
  // Bytes a shell argument cannot easily carry: newlines.
  testing::write_file(tmp / "text.txt", "Hello\nworld\n\n");
  const auto model = (tokenizers() / "llama2" / "tokenizer.model").string();
  auto r = run_command(tandem() + " tokenize --tokenizer " + model + " --text-file " + (tmp / "text.txt").string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "[15043, 13, 11526, 13, 13]\n");
  auto s = run_command(tandem() + " tokenize --tokenizer " + model + " --text 'Hello world' --add-special");
  EXPECT_EQ(s.out, "[1, 15043, 3186]\n");
  auto d = run_command(tandem() + " detokenize --tokenizer " + model + " --ids 15043,13,11526,13,13");
  EXPECT_EQ(d.out, "Hello\nworld\n\n");
}

TEST(TokenizerCli, BadInputIsOneLineError) {
  const std::vector<std::string> commands = {
      " tokenize --tokenizer /nonexistent/tokenizer.json --text hi",
      " tokenize --tokenizer " + demo() + " --text-file /nonexistent/text.txt",
      " tokenize --tokenizer " + demo(),
      " detokenize --tokenizer " + demo() + " --ids 1,x,3",
      " detokenize --tokenizer " + demo() + " --ids 99999999",
      " detokenize --tokenizer " + demo() + " --ids=-1",
      " detokenize --tokenizer /nonexistent --ids 1",
  };
  for (const auto& cmd : commands) {
    auto r = run_command(tandem() + cmd);
    EXPECT_NE(r.status, 0) << cmd;
    EXPECT_EQ(r.out, "") << cmd;
    EXPECT_EQ(count_lines(r.err), 1) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << cmd << ": " << r.err;
  }
}

// Needs the chat template engine (src/tokenizer/chat_template*).
TEST(TokenizerCli, RenderChatMatchesTransformers) {
  const json fixtures = json::parse(testing::read_file(tokenizers() / "chat_templates.json"));
  const json& gemma = fixtures.at("gemma3");
  testing::TempDir tmp;
  const json config = {{"chat_template", gemma.at("template")},
                       {"bos_token", gemma.at("bos_token")},
                       {"eos_token", gemma.at("eos_token")}};
  testing::write_file(tmp / "tokenizer_config.json", config.dump());
  for (size_t i = 0; i < gemma.at("conversations").size(); ++i) {
    const auto messages = tmp / ("messages" + std::to_string(i) + ".json");
    testing::write_file(messages, gemma.at("conversations")[i].dump());
    auto r = run_command(tandem() + " render-chat --model " + tmp.path().string() + " --messages " +
                         messages.string() + " --add-generation-prompt");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, gemma.at("renders")[i].get<std::string>()) << "conversation " << i;
    // The object form gives the same prompt.
    testing::write_file(messages, json{{"messages", gemma.at("conversations")[i]}}.dump());
    auto o = run_command(tandem() + " render-chat --model " + tmp.path().string() + " --messages " +
                         messages.string() + " --add-generation-prompt");
    EXPECT_EQ(o.out, r.out);
  }
}

TEST(TokenizerCli, ChatWithoutTemplateIsAClearError) {
  auto r = run_command(tandem() + " run --model " + demo() + " --prompt hi -n 2 --chat");
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("no chat template"), std::string::npos) << r.err;
  testing::TempDir tmp;
  testing::write_file(tmp / "m.json", "[]");
  auto c = run_command(tandem() + " render-chat --model " + demo() + " --messages " + (tmp / "m.json").string());
  EXPECT_NE(c.status, 0);
  EXPECT_NE(c.err.find("no chat template"), std::string::npos) << c.err;
  auto bad = run_command(tandem() + " render-chat --model " + demo() + " --messages /nonexistent.json");
  EXPECT_NE(bad.status, 0);
  EXPECT_EQ(count_lines(bad.err), 1) << bad.err;
}

}  // namespace
}  // namespace tandem
