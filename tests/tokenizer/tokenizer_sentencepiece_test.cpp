// SentencePiece-style tokenizers: the Metaspace pre-tokenizer and decoder, BPE byte fallback,
// the Llama 2 tokenizer.json conversion, and SentencePiece tokenizer.model files read through
// the sentencepiece library. References come from Hugging Face tokenizers and sentencepiece.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/decoder.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace tandem::tokenizer {
namespace {

using nlohmann::json;
using Pieces = std::vector<std::string>;
using testing::shared_dir;

const std::string kMeta = "\xE2\x96\x81";  // U+2581, SentencePiece's word boundary

std::filesystem::path fixture_dir() {
  return shared_dir() / "fixtures" / "tokenizers";
}

const json& reference() {
  static const json ref =
      json::parse(testing::read_file(fixture_dir() / "reference_encodings.json"));
  return ref;
}

Pieces metaspace(const json& config, const std::string& text, bool at_start = true) {
  auto pre = make_pre_tokenizer(JsonNode(config, "test.json", "pre_tokenizer"));
  Pieces pieces;
  pre->pre_tokenize(text, at_start, [&](std::string_view piece) { pieces.emplace_back(piece); });
  return pieces;
}

json metaspace_config(const std::string& scheme, bool split) {
  return {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", scheme}, {"split", split}};
}

// Expected values from tokenizers' pre_tokenizers/metaspace.rs tests.
TEST(TokenizerMetaspace, SplitsOnReplacementMergedWithNext) {
  const json config = metaspace_config("always", true);
  EXPECT_EQ(metaspace(config, "Hey friend!"), (Pieces{kMeta + "Hey", kMeta + "friend!"}));
  EXPECT_EQ(metaspace(config, "Hey   friend!"),
            (Pieces{kMeta + "Hey", kMeta, kMeta, kMeta + "friend!"}));
  EXPECT_EQ(metaspace(config, " Hey"), (Pieces{kMeta + "Hey"}));  // the space is the prefix
  EXPECT_EQ(metaspace(config, ""), Pieces{});
}

TEST(TokenizerMetaspace, WithoutSplitKeepsOnePiece) {
  EXPECT_EQ(metaspace(metaspace_config("always", false), "Hey  friend"),
            (Pieces{kMeta + "Hey" + kMeta + kMeta + "friend"}));
  EXPECT_EQ(metaspace(metaspace_config("always", false), kMeta + "x"), (Pieces{kMeta + "x"}));
}

TEST(TokenizerMetaspace, PrependSchemes) {
  EXPECT_EQ(metaspace(metaspace_config("never", true), "Hey friend"),
            (Pieces{"Hey", kMeta + "friend"}));
  EXPECT_EQ(metaspace(metaspace_config("first", true), "Hey", true), (Pieces{kMeta + "Hey"}));
  EXPECT_EQ(metaspace(metaspace_config("first", true), "Hey", false), (Pieces{"Hey"}));
  EXPECT_EQ(metaspace(metaspace_config("always", true), "Hey", false), (Pieces{kMeta + "Hey"}));
  // Files from tokenizers < 0.19: add_prefix_space instead of prepend_scheme.
  const json legacy = {{"type", "Metaspace"}, {"replacement", kMeta}, {"add_prefix_space", false}};
  EXPECT_EQ(metaspace(legacy, "a b"), (Pieces{"a", kMeta + "b"}));
  EXPECT_THROW(metaspace(metaspace_config("sometimes", true), "a"), Error);
}

// "first" looks at the offset in the whole input: text after an added token gets no prefix.
TEST(TokenizerMetaspace, FirstSchemeOnlyPrefixesTheStartOfTheInput) {
  json doc = {{"added_tokens", json::array({{{"id", 0}, {"content", "<s>"}, {"special", true}, {"normalized", false}}})},
              {"pre_tokenizer", metaspace_config("first", true)},
              {"model", {{"type", "BPE"}, {"vocab", {{"<s>", 0}, {kMeta, 1}, {"a", 2}, {kMeta + "a", 3}}},
                         {"merges", json::array({json::array({kMeta, "a"})})}}}};
  const auto tok = Tokenizer::from_json(doc.dump(), "first.json");
  EXPECT_EQ(tok->encode("a"), (std::vector<int32_t>{3}));
  EXPECT_EQ(tok->encode("<s>a"), (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(tok->encode("<s> a"), (std::vector<int32_t>{0, 3}));
}

TEST(TokenizerMetaspace, DecoderDropsReplacementsOfTheFirstToken) {
  const json config = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "always"}};
  auto dec = make_decoder(JsonNode(config, "test.json", "decoder"));
  std::vector<std::string> tokens = {kMeta + "Hey", kMeta + "friend" + kMeta, "!"};
  dec->decode_chain(tokens);
  EXPECT_EQ(tokens, (std::vector<std::string>{"Hey", " friend ", "!"}));
  const json never = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "never"}};
  tokens = {kMeta + "Hey"};
  make_decoder(JsonNode(never, "test.json", "decoder"))->decode_chain(tokens);
  EXPECT_EQ(tokens, (std::vector<std::string>{" Hey"}));
}

// Llama 2 style: characters outside the vocabulary become <0xNN> byte tokens.
TEST(TokenizerMetaspace, BpeByteFallbackWithMetaspace) {
  json vocab = {{"<unk>", 0}, {kMeta, 1}, {"h", 2}, {"i", 3}, {"hi", 4}, {kMeta + "hi", 5}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 6 + b;
  }
  json doc = {{"pre_tokenizer", metaspace_config("always", false)},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"byte_fallback", true}, {"unk_token", "<unk>"},
                         {"merges", json::array({json::array({"h", "i"}), json::array({kMeta, "hi"})})}}},
              {"decoder", {{"type", "Sequence"}, {"decoders", json::array({
                  {{"type", "Replace"}, {"pattern", {{"String", kMeta}}}, {"content", " "}},
                  {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}}};
  const auto tok = Tokenizer::from_json(doc.dump(), "fallback.json");
  const auto ids = tok->encode("hi \xC3\xA9");  // "hi é"
  EXPECT_EQ(ids, (std::vector<int32_t>{5, 1, 6 + 0xC3, 6 + 0xA9}));
  EXPECT_EQ(tok->decode(ids), "hi \xC3\xA9");
  testing::expect_stream_matches_decode(*tok, ids);
}

// The fixture is the transformers conversion of Llama 2 as written (a vocabulary of only the
// three special tokens, no byte tokens, no unk): Hugging Face drops every character, so all
// ids are empty and decode to "". What matters is that we load it and agree on that.
TEST(TokenizerSentencePiece, Llama2TokenizerJsonMatchesReference) {
  const auto tok = Tokenizer::load(fixture_dir() / "llama2" / "tokenizer.json");
  const json& texts = reference().at("texts");
  const json& expected = reference().at("tokenizers").at("llama2");
  int passed = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto text = texts[i].get<std::string>();
    const auto want = expected.at("ids")[i].get<std::vector<int32_t>>();
    const auto got = tok->encode(text);
    EXPECT_EQ(got, want) << "text " << i << ": " << text;
    EXPECT_EQ(tok->decode(want, false), expected.at("decoded")[i].get<std::string>()) << i;
    passed += got == want;
  }
  EXPECT_EQ(passed, static_cast<int>(texts.size()));
  EXPECT_EQ(tok->vocab_size(), 3);
}

TEST(TokenizerSentencePiece, Llama2ModelMatchesSentencePieceIds) {
  const auto tok = Tokenizer::load(fixture_dir() / "llama2" / "tokenizer.model");
  const json& texts = reference().at("texts");
  const json& expected = reference().at("tokenizers").at("llama2_sentencepiece").at("ids");
  ASSERT_EQ(texts.size(), expected.size());
  int passed = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto text = texts[i].get<std::string>();
    const auto want = expected[i].get<std::vector<int32_t>>();
    const auto got = tok->encode(text);
    EXPECT_EQ(got, want) << "text " << i << ": " << text;
    passed += got == want;
    testing::expect_stream_matches_decode(*tok, want);
  }
  EXPECT_EQ(passed, static_cast<int>(texts.size()));
}

TEST(TokenizerSentencePiece, Llama2ModelDecodesAndKnowsItsSpecialTokens) {
  const auto tok = Tokenizer::load(fixture_dir() / "llama2" / "tokenizer.model");
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->encode("Hello world", true), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{1, 15043, 3186, 2}), "Hello world");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{15043, 29871, 243, 162, 148, 142}),
            "Hello \xF0\x9F\x91\x8B");  // byte pieces reassemble into one emoji
  EXPECT_EQ(tok->token_to_id(kMeta + "Hello"), 15043);
  EXPECT_EQ(tok->token_to_id("no such piece"), std::nullopt);
  EXPECT_EQ(tok->id_to_token(1), "<s>");
  EXPECT_EQ(tok->id_to_token(32000), std::nullopt);
  EXPECT_TRUE(tok->is_special(0));
  EXPECT_TRUE(tok->is_special(2));
  EXPECT_FALSE(tok->is_special(15043));
  EXPECT_THROW(tok->decode(std::vector<int32_t>{32000}), Error);
  EXPECT_THROW(tok->decode(std::vector<int32_t>{-1}), Error);
  // Invalid UTF-8 must not throw.
  EXPECT_NO_THROW(tok->encode("\xFF\xFE abc \xC3"));
  for (const json& t : reference().at("texts")) {
    const auto text = t.get<std::string>();
    // Llama 2's model normalizes nothing and decoding removes only the dummy prefix it added,
    // so every text comes back byte for byte.
    EXPECT_EQ(tok->decode(tok->encode(text)), text) << text;
  }
}

TEST(TokenizerSentencePiece, FolderWithOnlyTokenizerModelLoads) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("tandem_sp_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(fixture_dir() / "llama2" / "tokenizer.model", dir / "tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing);
  const auto tok = Tokenizer::load(dir);
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{15043, 3186}));
  std::filesystem::remove_all(dir);
}

TEST(TokenizerSentencePiece, BadModelFileNamesTheFile) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("tandem_bad_" + std::to_string(::getpid()) + ".model");
  { std::ofstream(path) << "not a protobuf"; }
  try {
    Tokenizer::load(path);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace tandem::tokenizer
