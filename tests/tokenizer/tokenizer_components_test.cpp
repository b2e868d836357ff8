// Unit tests of the pipeline stages on small hand-written configurations. Expected values follow
// the Hugging Face tokenizers sources and their own tests (e.g. added_vocabulary.rs, split.rs).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_normalization.h"

namespace tandem::tokenizer {
namespace {

using nlohmann::json;
using Pieces = std::vector<std::string>;

const std::string kSource = "test.json";
// Byte-level alphabet characters for a space and a newline ('Ġ' and 'Ċ').
const std::string kSpace = "\xC4\xA0";
const std::string kNewline = "\xC4\x8A";

Pieces pre_tokenize(const json& config, const std::string& text) {
  auto pre = make_pre_tokenizer(JsonNode(config, kSource, "pre_tokenizer"));
  Pieces pieces;
  pre->pre_tokenize(text, [&](std::string_view piece) { pieces.emplace_back(piece); });
  return pieces;
}

json split_config(const std::string& behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"String", "-"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

TEST(TokenizerPreTokenizer, SplitBehaviorsMatchHuggingFaceDocs) {
  const std::string text = "the-final--countdown";
  EXPECT_EQ(pre_tokenize(split_config("Removed"), text), (Pieces{"the", "final", "countdown"}));
  EXPECT_EQ(pre_tokenize(split_config("Isolated"), text),
            (Pieces{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split_config("MergedWithPrevious"), text),
            (Pieces{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split_config("MergedWithNext"), text),
            (Pieces{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pre_tokenize(split_config("Contiguous"), text),
            (Pieces{"the", "-", "final", "--", "countdown"}));
  // Inverted: the words are the matches, so Removed keeps only the delimiters.
  EXPECT_EQ(pre_tokenize(split_config("Removed", true), text), (Pieces{"-", "-", "-"}));
}

TEST(TokenizerPreTokenizer, SplitRegexAndEmptyText) {
  const json config = {{"type", "Split"},
                       {"pattern", {{"Regex", "\\s+"}}},
                       {"behavior", "Removed"},
                       {"invert", false}};
  EXPECT_EQ(pre_tokenize(config, "How are  you"), (Pieces{"How", "are", "you"}));
  EXPECT_EQ(pre_tokenize(config, ""), Pieces{});
  // Regex metacharacters in a String pattern are literal.
  const json literal = {{"type", "Split"},
                        {"pattern", {{"String", ".*"}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
  EXPECT_EQ(pre_tokenize(literal, "a.*b"), (Pieces{"a", ".*", "b"}));
}

TEST(TokenizerPreTokenizer, ByteLevelWithGpt2Regex) {
  const json config = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  // "  fine": \s+(?!\S) leaves the last space to join the word.
  EXPECT_EQ(pre_tokenize(config, "I'm  fine!!\n"),
            (Pieces{"I", "'m", kSpace, kSpace + "fine", "!!", kNewline}));
  const json prefix = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}};
  EXPECT_EQ(pre_tokenize(prefix, "Hi you"), (Pieces{kSpace + "Hi" + kSpace + "you"}));
  // Every byte, even an invalid one, maps to one alphabet character.
  EXPECT_EQ(pre_tokenize(prefix, "\xFF"), (Pieces{kSpace + "\xC3\xBF"}));
}

TEST(TokenizerPreTokenizer, SequenceAppliesStepsInOrder) {
  const json config = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", "\\p{N}{1,3}"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  EXPECT_EQ(pre_tokenize(config, "ab12345 c"), (Pieces{"ab", "123", "45", kSpace + "c"}));
}

TEST(TokenizerNormalizer, NfcMatchesPythonUnicodedata) {
  // Expected values from Python's unicodedata.normalize("NFC", ...).
  EXPECT_EQ(to_nfc("e\u0301"), "\u00e9");
  EXPECT_EQ(to_nfc("\u1100\u1161\u11a8"), "\uac01");  // Hangul L V T
  EXPECT_EQ(to_nfc("\uac00\u11a8"), "\uac01");        // Hangul LV + T
  EXPECT_EQ(to_nfc("\u212b"), "\u00c5");              // singleton decomposition
  EXPECT_EQ(to_nfc("e\u0323\u0302"), "\u1ec7");
  EXPECT_EQ(to_nfc("e\u0302\u0323"), "\u1ec7");  // canonical reordering first
  EXPECT_EQ(to_nfc("a\u0308\u0301x"), "\u00e4\u0301x");
  EXPECT_EQ(to_nfc("\u0344"), "\u0308\u0301");  // non-starter decomposition
  EXPECT_EQ(to_nfc("A\u030a\u0301"), "\u01fa");
  EXPECT_EQ(to_nfc("q\u0307\u0323"), "q\u0323\u0307");
  EXPECT_EQ(to_nfc("\u0958"), "\u0915\u093c");                        // composition exclusion
  EXPECT_EQ(to_nfc("\ufb01 \u00bd \u2460"), "\ufb01 \u00bd \u2460");  // NFKC-only: unchanged
  EXPECT_EQ(to_nfc("plain ascii"), "plain ascii");
  // Invalid bytes pass through and block composition.
  EXPECT_EQ(to_nfc("e\xFF\u0301"), "e\xFF\u0301");
  EXPECT_EQ(to_nfc("\xE2\x82"), "\xE2\x82");
}

TEST(TokenizerNormalizer, ReplacePrependAndSequence) {
  const json config = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\u2581"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}};
  auto n = make_normalizer(JsonNode(config, kSource, "normalizer"));
  EXPECT_EQ(n->normalize("a b"), "\u2581a\u2581b");
  EXPECT_EQ(n->normalize(""), "");
}

TEST(TokenizerNormalizer, CompatibilityFormsLowercaseAndStrip) {
  // Expected values from Python's unicodedata.normalize and str.lower.
  auto make = [](const json& config) { return make_normalizer(JsonNode(config, kSource, "normalizer")); };
  EXPECT_EQ(make({{"type", "NFKC"}})->normalize("\ufb01 \u00bd \u2460 e\u0301"), "fi 1\u20442 1 \u00e9");
  EXPECT_EQ(make({{"type", "NFKD"}})->normalize("\ufb01\u00e9"), "fie\u0301");
  EXPECT_EQ(make({{"type", "NFD"}})->normalize("\u00e9\ufb01"), "e\u0301\ufb01");
  EXPECT_EQ(make({{"type", "Lowercase"}})->normalize("HeLLo \u00c9\u0391\u0416 \xFF"), "hello \u00e9\u03b1\u0436 \xFF");
  EXPECT_EQ(make({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}})->normalize("  a b \n"), "a b \n");
  EXPECT_EQ(make({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}})->normalize(" \t "), "");
  // Invalid bytes survive every form.
  EXPECT_EQ(make({{"type", "NFKC"}})->normalize("x\xC3"), "x\xC3");
}

// A tiny BPE tokenizer (no pre-tokenizer, no decoder) around one model configuration.
json tiny_tokenizer(json model, json added = json::array()) {
  model["type"] = "BPE";
  return {{"model", std::move(model)}, {"added_tokens", std::move(added)}};
}

std::vector<int32_t> encode_with(const json& config, const std::string& text) {
  return Tokenizer::from_json(config.dump(), kSource)->encode(text);
}

TEST(TokenizerBpe, MergesApplyLowestRankFirst) {
  const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  EXPECT_EQ(
      encode_with(tiny_tokenizer({{"vocab", vocab}, {"merges", {"b c", "a b", "ab c"}}}), "abc"),
      (std::vector<int32_t>{0, 4}));
  // Pair-form merges, as newer tokenizer.json files write them.
  EXPECT_EQ(
      encode_with(
          tiny_tokenizer({{"vocab", vocab},
                          {"merges", json::array({json::array({"a", "b"}), json::array({"b", "c"}),
                                                  json::array({"ab", "c"})})}}),
          "abc"),
      (std::vector<int32_t>{5}));
  // Equal ranks resolve leftmost first: "aaa" -> "aa" + "a".
  const json as = {{"a", 0}, {"aa", 1}};
  EXPECT_EQ(encode_with(tiny_tokenizer({{"vocab", as}, {"merges", {"a a"}}}), "aaa"),
            (std::vector<int32_t>{1, 0}));
}

TEST(TokenizerBpe, LongWordsStayFast) {
  const json as = {{"a", 0}, {"aa", 1}, {"aaaa", 2}};
  auto tok = Tokenizer::from_json(
      tiny_tokenizer({{"vocab", as}, {"merges", {"a a", "aa aa"}}}).dump(), kSource);
  const auto ids = tok->encode(std::string(100001, 'a'));
  ASSERT_EQ(ids.size(), 25001u);
  EXPECT_EQ(ids.back(), 0);
}

TEST(TokenizerBpe, IgnoreMergesTakesWholeVocabularyWords) {
  const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"abc", 3}};
  json model = {{"vocab", vocab}, {"merges", json::array()}, {"ignore_merges", true}};
  EXPECT_EQ(encode_with(tiny_tokenizer(model), "abc"), (std::vector<int32_t>{3}));
  model["ignore_merges"] = false;
  EXPECT_EQ(encode_with(tiny_tokenizer(model), "abc"), (std::vector<int32_t>{0, 1, 2}));
}

TEST(TokenizerBpe, UnknownCharactersAndByteFallback) {
  const json vocab = {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"<0x58>", 3}};
  json model = {{"vocab", vocab}, {"merges", json::array()}, {"unk_token", "<unk>"}};
  model["fuse_unk"] = true;
  EXPECT_EQ(encode_with(tiny_tokenizer(model), "aYZb"), (std::vector<int32_t>{1, 0, 2}));
  model["fuse_unk"] = false;
  EXPECT_EQ(encode_with(tiny_tokenizer(model), "aYZb"), (std::vector<int32_t>{1, 0, 0, 2}));
  model["byte_fallback"] = true;
  EXPECT_EQ(encode_with(tiny_tokenizer(model), "aXb"), (std::vector<int32_t>{1, 3, 2}));
  // No unk token: unknown characters are dropped, as Hugging Face does.
  model.erase("unk_token");
  EXPECT_EQ(encode_with(tiny_tokenizer(model), "aYb"), (std::vector<int32_t>{1, 2}));
}

TEST(TokenizerBpe, SubwordPrefixAndWordSuffix) {
  const json prefixed = {{"a", 0}, {"##b", 1}, {"ab", 2}};
  EXPECT_EQ(encode_with(tiny_tokenizer({{"vocab", prefixed},
                                        {"merges", {"a ##b"}},
                                        {"continuing_subword_prefix", "##"}}),
                        "ab"),
            (std::vector<int32_t>{2}));
  const json suffixed = {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}};
  EXPECT_EQ(encode_with(
                tiny_tokenizer(
                    {{"vocab", suffixed}, {"merges", {"a b</w>"}}, {"end_of_word_suffix", "</w>"}}),
                "ab"),
            (std::vector<int32_t>{2}));
}

// Splits `text` with an added vocabulary over a one-token model; plain runs print as (text),
// added tokens as [id].
std::string split_added(const json& added, const std::string& text,
                        const Normalizer* normalizer = nullptr) {
  const json model_config = {{"type", "BPE"}, {"vocab", {{"x", 0}}}, {"merges", json::array()}};
  auto model = make_model(JsonNode(model_config, kSource, "model"));
  std::vector<AddedToken> tokens;
  for (const json& t : added) {
    AddedToken a;
    a.content = t.at("content");
    a.single_word = t.value("single_word", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.normalized = t.value("normalized", false);
    a.special = t.value("special", false);
    tokens.push_back(a);
  }
  AddedVocabulary vocab(tokens, *model, normalizer);
  std::string out;
  vocab.split(text, normalizer, [&](std::string_view run, int32_t id) {
    // Appended piecewise: GCC 12 at -O3 wrongly flags "literal" + temporary (-Wrestrict).
    if (id >= 0) {
      out.append("[").append(std::to_string(id)).append("]");
    } else {
      out.append("(").append(run).append(")");
    }
  });
  return out;
}

TEST(TokenizerAddedTokens, SingleWordOnlyMatchesWholeWords) {
  // added_vocabulary.rs test_single_word_is_correct, without its lowercasing normalizer.
  const json added = json::array({{{"content", "<mask>"}, {"single_word", true}}});
  EXPECT_EQ(split_added(added, "<mask> My name <mask> A<mask> <mask>ony <mask>"),
            "[1]( My name )[1]( A<mask> <mask>ony )[1]");
  // Punctuation is not a word character; a combining mark is.
  EXPECT_EQ(split_added(added, "<mask>, <mask>- \u25cc\u0330<mask>"),
            "[1](, )[1](- \u25cc\u0330<mask>)");
}

TEST(TokenizerAddedTokens, StripAbsorbsUnicodeSpacesWithoutOverlap) {
  // added_vocabulary.rs test_lstrip_unicode_space.
  const json added = json::array(
      {{{"content", "<mask>"}, {"single_word", true}, {"lstrip", true}, {"rstrip", true}}});
  EXPECT_EQ(split_added(added, "Hi <mask> there\t<mask>\t<mask>\u2000"), "(Hi)[1](there)[1][1]");
}

TEST(TokenizerAddedTokens, LongestMatchFirstAndIdAssignment) {
  const json added =
      json::array({{{"content", "<a>"}}, {{"content", "<a><b>"}}, {{"content", "x"}}});
  // Ids follow Hugging Face's add_tokens: a token already in the model keeps the model's id
  // ("x" -> 0), new ones get the next free id after the model vocabulary.
  EXPECT_EQ(split_added(added, "<a><b><a>x"), "[2][1][0]");
}

TEST(TokenizerAddedTokens, NormalizedTokensMatchNormalizedText) {
  const json config = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "_"}};
  auto normalizer = make_normalizer(JsonNode(config, kSource, "normalizer"));
  const json added = json::array({{{"content", "p q"}, {"normalized", true}}});
  EXPECT_EQ(split_added(added, "a p q b", normalizer.get()), "(a_)[1](_b)");
  // A raw (normalized=false) token is looked for in the text before normalization.
  const json raw = json::array({{{"content", "p_q"}, {"normalized", false}}});
  EXPECT_EQ(split_added(raw, "a p q b", normalizer.get()), "(a_p_q_b)");
}

}  // namespace
}  // namespace tandem::tokenizer
