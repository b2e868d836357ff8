// Parity with Hugging Face tokenizers on the shared fixtures: ids and decoded text must match
// exactly (the references were produced by the `tokenizers` library itself).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "base/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace tandem::tokenizer {
namespace {

using nlohmann::json;
using testing::expect_stream_matches_decode;
using testing::shared_dir;

json read_json(const std::filesystem::path& p) {
  return json::parse(testing::read_file(p));
}

std::unique_ptr<Tokenizer> load_fixture(const std::string& name) {
  const auto dir = shared_dir() / "fixtures" / "tokenizers" / name;
  if (std::filesystem::exists(dir / "tokenizer.json")) return Tokenizer::load(dir);
  auto text = testing::gunzip_file(dir / "tokenizer.json.gz");
  if (!text) return nullptr;
  return Tokenizer::from_json(*text, (dir / "tokenizer.json.gz").string());
}

// Every text of reference_encodings.json: exact ids (add_special_tokens=false), exact decode,
// decode(encode(text)) and streaming consistency.
void check_reference_encodings(const std::string& name) {
  const auto tok = load_fixture(name);
  if (!tok) GTEST_SKIP() << name << " fixture not available (gzip missing?)";
  const json ref = read_json(shared_dir() / "fixtures" / "tokenizers" / "reference_encodings.json");
  const json& texts = ref.at("texts");
  const json& expected = ref.at("tokenizers").at(name);
  ASSERT_EQ(texts.size(), expected.at("ids").size());
  int passed = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const auto want = expected.at("ids")[i].get<std::vector<int32_t>>();
    const auto got = tok->encode(text, false);
    EXPECT_EQ(got, want) << name << " text " << i << ": " << text;
    EXPECT_EQ(tok->decode(want, false), expected.at("decoded")[i].get<std::string>())
        << name << " text " << i;
    expect_stream_matches_decode(*tok, want, false);
    expect_stream_matches_decode(*tok, want, true);
    passed += got == want;
  }
  EXPECT_EQ(passed, static_cast<int>(texts.size()));
}

TEST(TokenizerParity, Gpt2ReferenceEncodings) {
  check_reference_encodings("gpt2");
}
TEST(TokenizerParity, Llama3ReferenceEncodings) {
  check_reference_encodings("llama3");
}
TEST(TokenizerParity, Qwen3ReferenceEncodings) {
  check_reference_encodings("qwen3");
}
// Gemma 3 is SentencePiece-style BPE (Replace normalizer, byte fallback, Fuse decoder).
TEST(TokenizerParity, Gemma3ReferenceEncodings) {
  check_reference_encodings("gemma3");
}

TEST(TokenizerParity, DocstringModelPromptsAndGreedyText) {
  const auto dir = shared_dir() / "models" / "docstring-llama-9m";
  const auto tok = Tokenizer::load(dir);  // a folder works as well as the file
  const json ref = read_json(dir / "reference.json");
  ASSERT_FALSE(ref.at("greedy").empty());
  for (const json& g : ref.at("greedy")) {
    const std::string prompt = g.at("prompt").get<std::string>();
    EXPECT_EQ(tok->encode(prompt), g.at("prompt_ids").get<std::vector<int32_t>>()) << prompt;
    const auto ids = g.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids, true), g.at("text").get<std::string>()) << prompt;
    expect_stream_matches_decode(*tok, ids, true);
    expect_stream_matches_decode(*tok, ids, false);
  }
  EXPECT_EQ(tok->vocab_size(), 8192);
  EXPECT_TRUE(tok->is_special(0));
  EXPECT_EQ(tok->token_to_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok->id_to_token(0), "<|endoftext|>");
  // The special token is cut out of text before BPE and kept in decode only when asked.
  const auto ids = tok->encode("Return<|endoftext|>Return");
  EXPECT_EQ(ids, (std::vector<int32_t>{1104, 0, 1104}));
  EXPECT_EQ(tok->decode(ids, false), "Return<|endoftext|>Return");
  EXPECT_EQ(tok->decode(ids, true), "ReturnReturn");
}

// Random strings survive encode -> decode unchanged for every byte-level tokenizer.
std::string random_text(std::mt19937& rng, bool unicode) {
  static const char32_t kPool[] = {
      U'a',  U'Z',  U' ',  U' ', U'\n', U'\t',     U'.',      U'\'',     U'0', U'é', U'ß', U'Ж',
      U'中', U'文', U'の', U'😀', U'🚀',  U'\u0301', U'\u00A0', U'\u2009', U'ﬁ', U'ا', U'<', U'|'};
  std::uniform_int_distribution<int> len_dist(0, 40);
  std::uniform_int_distribution<int> ascii(32, 126);
  std::uniform_int_distribution<size_t> pick(0, std::size(kPool) - 1);
  std::string s;
  const int len = len_dist(rng);
  for (int i = 0; i < len; ++i) {
    char32_t cp = unicode && rng() % 2 ? kPool[pick(rng)] : static_cast<char32_t>(ascii(rng));
    // UTF-8 by hand to keep this file free of other helpers.
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

void check_round_trips(const Tokenizer& tok, bool nfc) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_text(rng, i % 2 == 1);
    const auto ids = tok.encode(s);
    // NFC may legitimately recompose "e" + U+0301; compare only where that cannot happen.
    if (!nfc || s.find("\xCC\x81") == std::string::npos) {
      EXPECT_EQ(tok.decode(ids), s) << "case " << i;
    }
    expect_stream_matches_decode(tok, ids);
  }
}

TEST(TokenizerParity, RoundTripRandomTextGpt2) {
  check_round_trips(*load_fixture("gpt2"), false);
}

TEST(TokenizerParity, RoundTripRandomTextDocstring) {
  check_round_trips(*Tokenizer::load(shared_dir() / "models" / "docstring-llama-9m"), false);
}

TEST(TokenizerParity, RoundTripRandomTextLlama3AndQwen3) {
  for (const char* name : {"llama3", "qwen3"}) {
    const auto tok = load_fixture(name);
    if (!tok) GTEST_SKIP() << name << " fixture not available";
    check_round_trips(*tok, std::string(name) == "qwen3");
  }
}

}  // namespace
}  // namespace tandem::tokenizer
