// The JSON-schema automaton, the token mask over the demo vocabulary and the validator.
#include "pipeline/json_schema.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/model_tokenizer.h"
#include "engine/sampler.h"
#include "models/logits_util.h"
#include "test_util.h"

namespace tandem::pipeline {
namespace {

using nlohmann::json;

SchemaNode node(const char* schema) {
  return compile_schema(json::parse(schema));
}

bool accepts(const SchemaNode& n, std::string_view text, bool* done = nullptr) {
  JsonMatcher m(n);
  const bool ok = m.feed(text);
  if (done) *done = m.done();
  return ok;
}

bool whole(const SchemaNode& n, std::string_view text) {
  bool done = false;
  return accepts(n, text, &done) && done;
}

TEST(JsonSchema, ObjectInKeyOrder) {
  auto n = node(
      R"({"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"string"}},"required":["a"]})");
  EXPECT_TRUE(whole(n, R"({"a":"x","b":-12})"));
  EXPECT_TRUE(whole(n, R"({"a":"","b":0})"));
  EXPECT_FALSE(accepts(n, R"({"b":1)"));            // keys come in order
  EXPECT_FALSE(accepts(n, R"({ "a")"));             // no whitespace
  EXPECT_FALSE(accepts(n, R"({"a":"x","b":01)"));   // no leading zeros
  EXPECT_FALSE(accepts(n, R"({"a":"x","b":1}x)"));  // nothing after
  EXPECT_FALSE(accepts(n, R"({"a":"x\)"));          // no escapes
  bool done = true;
  EXPECT_TRUE(accepts(n, R"({"a":"x","b":12)", &done));
  EXPECT_FALSE(done);
}

TEST(JsonSchema, DeclaredOrderFromOrderedJson) {
  auto n = compile_schema(nlohmann::ordered_json::parse(
      R"({"type":"object","properties":{"why":{"type":"string"},"answer":{"type":"integer"}}})"));
  EXPECT_TRUE(whole(n, R"({"why":"x","answer":1})"));
  EXPECT_FALSE(accepts(n, R"({"answer")"));
  // The config keeps the declared order too.
  ServeConfig c = parse_config_text(R"(
models: [{name: m, path: /m}]
pipelines:
  - name: p
    model: m
    steps:
      - type: extract
        prompt: x
        schema: {type: object, properties: {why: {type: string}, answer: {type: integer}}}
)");
  EXPECT_EQ(c.pipelines[0].steps[0].ordered_schema["properties"].begin().key(), "why");
}

TEST(JsonSchema, ScalarsAndEnums) {
  auto n = node(R"({"type":"object","properties":{
      "f":{"type":"number"},"t":{"type":"boolean"},"z":{"type":"null"},
      "e":{"enum":["red","green",1,12]},"c":{"const":"k"}}})");
  EXPECT_TRUE(whole(n, R"({"c":"k","e":"red","f":-1.5,"t":true,"z":null})"));
  EXPECT_TRUE(whole(n, R"({"c":"k","e":1,"f":0,"t":false,"z":null})"));
  EXPECT_TRUE(whole(n, R"({"c":"k","e":12,"f":3.25,"t":false,"z":null})"));
  EXPECT_FALSE(accepts(n, R"({"c":"k","e":"blue")"));
  EXPECT_FALSE(accepts(n, R"({"c":"k","e":2)"));
  EXPECT_FALSE(accepts(n, R"({"c":"k","e":1,"f":1.)"
                          "}"));
  EXPECT_FALSE(accepts(n, R"({"c":"j")"));
  EXPECT_FALSE(accepts(n, R"({"c":"k","e":1,"f":1,"t":tru})"));
}

TEST(JsonSchema, ArraysAndCaps) {
  auto n = node(
      R"({"type":"object","properties":{"xs":{"type":"array","items":{"type":"string","maxLength":3},
      "minItems":1,"maxItems":2}}})");
  EXPECT_TRUE(whole(n, R"({"xs":["a"]})"));
  EXPECT_TRUE(whole(n, R"({"xs":["abc","é"]})"));
  EXPECT_FALSE(accepts(n, R"({"xs":[])"));              // minItems
  EXPECT_FALSE(accepts(n, R"({"xs":["a","b",)"));       // maxItems
  EXPECT_FALSE(accepts(n, R"({"xs":["abcd")"));         // maxLength
  EXPECT_FALSE(accepts(n, "{\"xs\":[\"\xC3\x28"));      // broken UTF-8
  EXPECT_FALSE(accepts(n, "{\"xs\":[\"\xED\xA0\x80"));  // a surrogate
  auto big = node(R"({"type":"object","properties":{"i":{"type":"integer"}}})");
  EXPECT_TRUE(accepts(big, R"({"i":123456789012)"));
  EXPECT_FALSE(accepts(big, R"({"i":1234567890123)"));  // digit cap
}

TEST(JsonSchema, MinClose) {
  auto n = node(
      R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"array","items":{"type":"integer"},"minItems":2}}})");
  JsonMatcher m(n);
  const std::string shortest = R"({"a":"","b":[0,0]})";
  EXPECT_EQ(m.min_close(), static_cast<int64_t>(shortest.size()));
  for (size_t i = 0; i < shortest.size(); ++i) {
    ASSERT_TRUE(m.feed(static_cast<uint8_t>(shortest[i])));
    EXPECT_EQ(m.min_close(), static_cast<int64_t>(shortest.size() - i - 1)) << i;
  }
  EXPECT_TRUE(m.done());
}

TEST(JsonSchema, UnsupportedKeywords) {
  for (const char* kw :
       {R"({"type":"string","pattern":"a"})", R"({"anyOf":[]})", R"({"$ref":"#/x"})",
        R"({"type":"string","format":"date"})", R"({"type":"integer","minimum":0})",
        R"({"type":"object","additionalProperties":true})"}) {
    EXPECT_THROW(node(kw), SchemaError) << kw;
  }
  try {
    node(R"({"type":"object","properties":{"a":{"type":"string","format":"email"}}})");
    FAIL();
  } catch (const SchemaError& e) {
    EXPECT_EQ(e.where(), (std::vector<std::string>{"properties", "a", "format"}));
    EXPECT_NE(std::string(e.what()).find("unsupported keyword 'format'"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(node(R"({"type":"object","title":"t","description":"d","properties":{}})"));
}

TEST(JsonSchema, Validator) {
  const json schema = json::parse(R"({"type":"object","properties":{"n":{"type":"integer"},
      "s":{"type":"string","maxLength":2},"xs":{"type":"array","items":{"enum":["a","b"]},"maxItems":2}},
      "required":["n"]})");
  std::string why;
  EXPECT_TRUE(validate(json::parse(R"({"n":1,"s":"ab","xs":["a","b"]})"), schema, &why)) << why;
  EXPECT_TRUE(validate(json::parse(R"({"n":1})"), schema));
  EXPECT_FALSE(validate(json::parse(R"({"s":"a"})"), schema, &why));
  EXPECT_NE(why.find("'n'"), std::string::npos);
  EXPECT_FALSE(validate(json::parse(R"({"n":1.5})"), schema));
  EXPECT_FALSE(validate(json::parse(R"({"n":1,"s":"abc"})"), schema));
  EXPECT_FALSE(validate(json::parse(R"({"n":1,"xs":["c"]})"), schema, &why));
  EXPECT_NE(why.find("xs[0]"), std::string::npos) << why;
  EXPECT_FALSE(validate(json::parse(R"({"n":1,"extra":0})"), schema));
}

// The mask over the demo model's vocabulary: random walks through allowed tokens always end
// in text that parses and validates, within the token budget.
TEST(JsonSchema, RandomWalksOverDemoVocab) {
  auto tok = engine::load_model_tokenizer(testing::source_dir() / "models" / "demo");
  auto vocab = std::make_shared<const VocabBytes>(*tok);
  const json schema =
      json::parse(R"({"type":"object","properties":{"name":{"type":"string","maxLength":10},
      "n":{"type":"integer"},"ok":{"type":"boolean"},"xs":{"type":"array","items":{"type":"number"},"maxItems":3}}})");
  auto compiled = std::make_shared<const SchemaNode>(compile_schema(schema));
  std::mt19937 rng(7);
  for (int walk = 0; walk < 20; ++walk) {
    const int64_t budget = 40 + walk * 4;
    JsonConstraint c(compiled, vocab, budget);
    int64_t used = 0;
    std::vector<float> logits(static_cast<size_t>(tok->vocab_size()), 0.0f);
    while (!c.complete()) {
      ASSERT_LT(used, budget) << c.text();
      std::fill(logits.begin(), logits.end(), 0.0f);
      c.mask(logits);
      std::vector<int32_t> ok;
      for (size_t i = 0; i < logits.size(); ++i) {
        if (logits[i] == 0.0f) ok.push_back(static_cast<int32_t>(i));
      }
      ASSERT_FALSE(ok.empty()) << c.text();
      EXPECT_TRUE(std::isinf(logits[0])) << "eos must stay masked";
      c.accept(ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)]);
      ++used;
    }
    json v;
    ASSERT_NO_THROW(v = json::parse(c.text())) << c.text();
    std::string why;
    EXPECT_TRUE(validate(v, schema, &why)) << c.text() << ": " << why;
  }
}

// The mask's shortcuts (first-byte buckets, plain string content) give exactly what walking
// every token's bytes gives, along random walks with tight and loose budgets.
TEST(JsonSchema, MaskMatchesBruteForce) {
  auto tok = engine::load_model_tokenizer(testing::source_dir() / "models" / "demo");
  auto vocab = std::make_shared<const VocabBytes>(*tok);
  const json schema =
      json::parse(R"({"type":"object","properties":{"s":{"type":"string","minLength":2,
      "maxLength":5},"t":{"type":"string"},"e":{"enum":["ab","abc"]}}})");
  auto compiled = std::make_shared<const SchemaNode>(compile_schema(schema));
  std::mt19937 rng(11);
  for (int walk = 0; walk < 6; ++walk) {
    const int64_t budget = walk % 2 ? 30 : 200;
    JsonConstraint c(compiled, vocab, budget);
    JsonMatcher state(*compiled);
    int64_t remaining = budget;
    while (!c.complete()) {
      std::vector<int32_t> fits, closest;
      int64_t best = std::numeric_limits<int64_t>::max();
      for (int32_t id = 0; id < vocab->size(); ++id) {
        if (vocab->bytes(id).empty()) continue;
        JsonMatcher m = state;
        if (!m.feed(vocab->bytes(id))) continue;
        const int64_t left = m.min_close();
        if (left <= remaining - 1) fits.push_back(id);
        if (left < best) best = left, closest.clear();
        if (left == best) closest.push_back(id);
      }
      const auto want = fits.empty() ? closest : fits;
      const auto got = c.allowed();
      ASSERT_EQ(got, want) << c.text();
      const int32_t t = got[std::uniform_int_distribution<size_t>(0, got.size() - 1)(rng)];
      c.accept(t);
      state.feed(vocab->bytes(t));
      --remaining;
    }
    std::string why;
    EXPECT_TRUE(validate(json::parse(c.text()), schema, &why)) << c.text() << ": " << why;
  }
}

// Greedy decoding with the demo model's own logits under the mask: the model's favourite
// continuation of a code prompt, forced into the schema, parses and validates.
TEST(JsonSchema, GreedyDecodeOnDemoModel) {
  const auto dir = testing::source_dir() / "models" / "demo";
  auto model = models::Model::load(dir);
  auto tok = engine::load_model_tokenizer(dir);
  ThreadPool pool(2);
  auto vocab = std::make_shared<const VocabBytes>(*tok);
  const json schema =
      json::parse(R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},
      "size":{"type":"integer"},"kind":{"enum":["int","float"]}},"required":["name"]})");
  auto compiled = std::make_shared<const SchemaNode>(compile_schema(schema));
  for (const char* prompt :
       {"# Parameters of load_file as JSON\nparams = ", "def f(x):\n    return "}) {
    const int64_t budget = 40;
    JsonConstraint c(compiled, vocab, budget);
    auto ids = tok->encode(prompt, true);
    const auto V = static_cast<size_t>(model->vocab_size());
    for (int64_t step = 0; step < budget && !c.complete(); ++step) {
      auto logits = testing::logits_all(*model, ids, pool);
      std::span<float> last(logits.data() + (ids.size() - 1) * V, V);
      c.mask(last);
      const int32_t t = engine::argmax(last);
      c.accept(t);
      ids.push_back(t);
    }
    ASSERT_TRUE(c.complete()) << c.text();
    json v;
    ASSERT_NO_THROW(v = json::parse(c.text())) << c.text();
    std::string why;
    EXPECT_TRUE(validate(v, schema, &why)) << c.text() << ": " << why;
  }
}

}  // namespace
}  // namespace tandem::pipeline
