// Malformed tokenizer.json, bad ids and hostile input: always a tandem::Error that names the
// file and field, never a crash or another exception type. Also streaming and threading.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "base/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace tandem::tokenizer {
namespace {

using nlohmann::json;
using testing::expect_stream_matches_decode;
using testing::shared_dir;

// The message of the tandem::Error that loading `text` throws ("" if it loads).
std::string load_error(const std::string& text) {
  try {
    Tokenizer::from_json(text, "tokenizer.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

json minimal() {
  return json::parse(R"({
    "added_tokens": [{"id": 3, "content": "<s>", "special": true, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
  })");
}

std::string error_with(const std::string& pointer, const json& value) {
  json j = minimal();
  j[json::json_pointer(pointer)] = value;
  return load_error(j.dump());
}

TEST(TokenizerErrors, MinimalConfigLoads) {
  EXPECT_EQ(load_error(minimal().dump()), "");
  auto tok = Tokenizer::from_json(minimal().dump(), "tokenizer.json");
  EXPECT_EQ(tok->encode("ab<s>ba"), (std::vector<int32_t>{2, 3, 1, 0}));
  EXPECT_EQ(tok->vocab_size(), 4);
}

TEST(TokenizerErrors, MessagesNameTheFileAndField) {
  EXPECT_EQ(load_error(R"({"added_tokens": []})"), "tokenizer.json: model is missing");
  EXPECT_EQ(error_with("/model", json::array()),
            "tokenizer.json: model must be an object, got an array");
  EXPECT_EQ(error_with("/model/type", "Unigram"),
            "tokenizer.json: model.type 'Unigram' is not supported (supported: BPE)");
  EXPECT_EQ(error_with("/normalizer", {{"type", "BertNormalizer"}}),
            "tokenizer.json: normalizer.type 'BertNormalizer' is not supported "
            "(supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, Sequence)");
  EXPECT_EQ(error_with("/model/vocab", json::array()),
            "tokenizer.json: model.vocab must be an object, got an array");
  EXPECT_EQ(error_with("/model/vocab/a", "zero"),
            "tokenizer.json: model.vocab.a must be an integer, got a string");
  EXPECT_EQ(error_with("/model/merges/0", "a zz"),
            "tokenizer.json: model.merges[0] refers to 'zz', which is not in model.vocab");
  EXPECT_EQ(error_with("/model/merges/0", "ab"),
            "tokenizer.json: model.merges[0] must be two tokens separated by one space, got 'ab'");
  EXPECT_EQ(error_with("/added_tokens/0/id", -1),
            "tokenizer.json: added_tokens[0].id is -1, outside the supported id range [0, "
            "16777216)");
  EXPECT_EQ(error_with("/added_tokens/0/content", 5),
            "tokenizer.json: added_tokens[0].content must be a string, got an integer");
  EXPECT_EQ(error_with("/pre_tokenizer/type", "BertPreTokenizer"),
            "tokenizer.json: pre_tokenizer.type 'BertPreTokenizer' is not supported "
            "(supported: ByteLevel, Metaspace, Split, Sequence)");
  EXPECT_EQ(error_with("/decoder", {{"type", "WordPiece"}})
                .rfind("tokenizer.json: decoder.type 'WordPiece' is not supported", 0),
            0u);
  EXPECT_EQ(error_with("/post_processor", {{"type", "BertProcessing"}})
                .rfind("tokenizer.json: post_processor.type 'BertProcessing' is not supported", 0),
            0u);
  EXPECT_EQ(error_with("/model/dropout", 0.1).rfind("tokenizer.json: model.dropout > 0", 0), 0u);
  const std::string bad_regex =
      error_with("/pre_tokenizer",
                 {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}});
  EXPECT_EQ(bad_regex.rfind("tokenizer.json: pre_tokenizer.pattern.Regex: invalid regex", 0), 0u)
      << bad_regex;
  EXPECT_EQ(error_with("/pre_tokenizer",
                       {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Odd"}}),
            "tokenizer.json: pre_tokenizer.behavior 'Odd' is not supported (supported: Removed, "
            "Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
  EXPECT_EQ(load_error("[]"), "tokenizer.json: must be an object, got an array");
}

TEST(TokenizerErrors, InvalidJsonIsReportedNotThrownRaw) {
  EXPECT_EQ(load_error("").rfind("tokenizer.json: invalid JSON:", 0), 0u);
  EXPECT_EQ(load_error("{\"model\": \"\xFF\"}").rfind("tokenizer.json: invalid JSON:", 0), 0u);
  // Every truncation of a real file fails cleanly.
  const std::string full =
      testing::read_file(shared_dir() / "models" / "docstring-llama-9m" / "tokenizer.json");
  ASSERT_GT(full.size(), 1000u);
  for (size_t cut :
       {size_t{1}, size_t{10}, size_t{100}, full.size() / 3, full.size() / 2, full.size() - 2}) {
    const std::string message = load_error(full.substr(0, cut));
    EXPECT_EQ(message.rfind("tokenizer.json: invalid JSON:", 0), 0u) << cut << ": " << message;
  }
}

TEST(TokenizerErrors, DeepNestingIsRefused) {
  json n = {{"type", "NFC"}};
  for (int i = 0; i < 200; ++i) n = {{"type", "Sequence"}, {"normalizers", json::array({n})}};
  EXPECT_NE(error_with("/normalizer", n).find("is nested too deeply"), std::string::npos);
}

TEST(TokenizerErrors, RandomByteMutationsNeverEscapeAsOtherExceptions) {
  const std::string base = minimal().dump();
  std::mt19937 rng(99);
  for (int i = 0; i < 3000; ++i) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) text[rng() % text.size()] = static_cast<char>(rng() % 256);
    try {
      auto tok = Tokenizer::from_json(text, "mutated");
      const auto ids = tok->encode("ab ba\xFF <s>", true);
      (void)tok->decode(ids);
    } catch (const Error&) {
      // expected for most mutations
    }
  }
}

TEST(TokenizerErrors, LoadReportsMissingFiles) {
  try {
    Tokenizer::load("/nonexistent/dir/tokenizer.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("/nonexistent/dir/tokenizer.json: cannot open", 0), 0u);
  }
}

TEST(TokenizerErrors, DecodeRejectsOutOfRangeIds) {
  auto tok = Tokenizer::from_json(minimal().dump(), "tokenizer.json");
  for (int32_t bad : {-1, 4, 1 << 30}) {
    try {
      tok->decode(std::vector<int32_t>{0, bad});
      FAIL() << "expected an error for " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(bad)), std::string::npos);
    }
  }
  StreamDecoder stream(*tok);
  EXPECT_EQ(stream.push(0), "a");
  EXPECT_THROW(stream.push(99), Error);
  EXPECT_EQ(stream.push(1), "b");  // the bad id did not poison the stream
}

TEST(TokenizerStream, HoldsBackPartialCharacters) {
  auto tok = Tokenizer::load(shared_dir() / "fixtures" / "tokenizers" / "gpt2");
  const std::string text = "emoji \xF0\x9F\x91\x8B\xF0\x9F\x8F\xBD and \xE4\xBD\xA0\xE5\xA5\xBD!";
  const auto ids = tok->encode(text);
  StreamDecoder stream(*tok);
  std::string joined;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "emitted a partial character";
    joined += piece;
  }
  joined += stream.flush();
  EXPECT_EQ(joined, text);
  // A stream that ends inside a character flushes the same U+FFFD that decode gives.
  const auto partial = tok->encode("\xF0\x9F\x91");
  expect_stream_matches_decode(*tok, partial);
  EXPECT_EQ(tok->decode(partial), "\xEF\xBF\xBD");
}

TEST(TokenizerInput, InvalidUtf8IsEncodedByteForByte) {
  auto tok = Tokenizer::load(shared_dir() / "fixtures" / "tokenizers" / "gpt2");
  const std::string bytes =
      "a\xFF"
      "b \xC3 \xE2\x82 ok\xF0\x9F";
  const auto ids = tok->encode(bytes);
  ASSERT_FALSE(ids.empty());
  // Decoding repairs each maximal invalid sequence into one U+FFFD, like from_utf8_lossy.
  EXPECT_EQ(tok->decode(ids),
            "a\xEF\xBF\xBD"
            "b \xEF\xBF\xBD \xEF\xBF\xBD ok\xEF\xBF\xBD");
  expect_stream_matches_decode(*tok, ids);
}

TEST(TokenizerInput, AddSpecialTokensUsesTheTemplate) {
  json j = minimal();
  j["post_processor"] = json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [3], "tokens": ["<s>"]}}})");
  auto tok = Tokenizer::from_json(j.dump(), "tokenizer.json");
  EXPECT_EQ(tok->encode("ab", true), (std::vector<int32_t>{3, 2}));
  EXPECT_EQ(tok->encode("ab", false), (std::vector<int32_t>{2}));
  EXPECT_TRUE(tok->is_special(3));
  EXPECT_FALSE(tok->is_special(2));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{3, 2}, true), "ab");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{3, 2}, false), "<s>ab");
}

TEST(TokenizerInput, ConcurrentEncodesAgree) {
  auto tok = Tokenizer::load(shared_dir() / "fixtures" / "tokenizers" / "gpt2");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "word" + std::to_string(i % 37) + " and more text, ";
  const auto expected = tok->encode(text);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 20; ++r) ok[static_cast<size_t>(t)] += tok->encode(text) == expected;
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 20);
}

}  // namespace
}  // namespace tandem::tokenizer
