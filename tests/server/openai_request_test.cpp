// Request bodies: valid ones become structs, everything else a 400 naming the parameter.
#include "server/openai_request.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

using server::ApiError;
using server::CompletionRequest;
using server::Endpoint;

CompletionRequest ok(const std::string& body, Endpoint kind = Endpoint::kChat) {
  auto r = server::parse_completion_request(body, kind);
  if (auto* e = std::get_if<ApiError>(&r)) ADD_FAILURE() << body << " -> " << e->message;
  return std::holds_alternative<CompletionRequest>(r) ? std::get<CompletionRequest>(r)
                                                      : CompletionRequest{};
}

ApiError err(const std::string& body, Endpoint kind = Endpoint::kChat) {
  auto r = server::parse_completion_request(body, kind);
  if (std::holds_alternative<CompletionRequest>(r)) {
    ADD_FAILURE() << body << " was accepted";
    return {};
  }
  return std::get<ApiError>(r);
}

TEST(OpenAiRequest, ParsesAChatRequest) {
  auto r = ok(R"({"model":"m","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
      "max_tokens":12,"temperature":0,"top_p":0.5,"seed":-3,"n":2,"stream":true,
      "stream_options":{"include_usage":true},"stop":["a","b"],"logprobs":true,"top_logprobs":3,
      "frequency_penalty":0,"user":"x","tools":null,"some_future_field":{"x":1}})");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1]["content"], "hi there");
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(r.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(r.n, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
}

TEST(OpenAiRequest, DefaultsAndAlternateForms) {
  auto r = ok(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":"END","max_completion_tokens":5})");
  EXPECT_EQ(r.temperature, 1.0f);
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.max_tokens, 5);
  auto c =
      ok(R"({"model":"m","prompt":[1,2,3],"logprobs":2,"max_tokens":4.0})", Endpoint::kCompletion);
  EXPECT_TRUE(c.prompt_is_ids);
  EXPECT_EQ(c.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(c.logprobs);
  EXPECT_EQ(c.top_logprobs, 2);
  EXPECT_EQ(c.max_tokens, 4);
  auto c2 = ok(R"({"model":"m","prompt":["hello"]})", Endpoint::kCompletion);
  EXPECT_EQ(c2.prompt, "hello");
}

TEST(OpenAiRequest, RejectsBadBodiesNamingTheParameter) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"({"model":5,"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"({"model":"m"})", "messages"},
      {R"({"model":"m","messages":[]})", "messages"},
      {R"({"model":"m","messages":"hi"})", "messages"},
      {R"({"model":"m","messages":[5]})", "messages[0]"},
      {R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user","content":7}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
       "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})", "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":99999999999})",
       "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"10"})",
       "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1.5})",
       "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3})",
       "temperature"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"})",
       "temperature"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_p":0})", "top_p"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":1000})", "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]})", "stop"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})",
       "stop"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})",
       "top_logprobs"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21})",
       "top_logprobs"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":1e300})", "seed"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":3})",
       "stream_options"},
  };
  for (const auto& c : cases) {
    ApiError e = err(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
    EXPECT_FALSE(e.message.empty());
  }
  EXPECT_EQ(err(R"({"model":"m","prompt":""})", Endpoint::kCompletion).param, "prompt");
  EXPECT_EQ(err(R"({"model":"m","prompt":[-1]})", Endpoint::kCompletion).param, "prompt");
  EXPECT_EQ(err(R"({"model":"m","prompt":{}})", Endpoint::kCompletion).param, "prompt");
  EXPECT_EQ(err(R"({"model":"m","prompt":"x","logprobs":9})", Endpoint::kCompletion).param,
            "logprobs");
}

TEST(OpenAiRequest, MalformedJsonAndInvalidUtf8AreBadRequests) {
  for (const std::string& body :
       {std::string("{"), std::string(""), std::string("[1,2]"), std::string("null"),
        std::string("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}"),
        std::string("{\"model\":\"\xc3\"}")}) {
    ApiError e = err(body);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.type, "invalid_request_error");
  }
}

TEST(OpenAiRequest, ErrorJsonHasTheOpenAiShape) {
  ApiError e;
  e.message = "bad \xff thing";
  e.param = "model";
  auto j = nlohmann::json::parse(e.to_json());
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "model");
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_TRUE(j["error"]["message"].is_string());
}

TEST(OpenAiRequest, EmbeddingTokenizeDetokenize) {
  auto e = server::parse_embedding_request(R"({"model":"m","input":["a","b"]})");
  ASSERT_TRUE(std::holds_alternative<server::EmbeddingRequest>(e));
  EXPECT_EQ(std::get<server::EmbeddingRequest>(e).texts.size(), 2u);
  e = server::parse_embedding_request(R"({"model":"m","input":[[1,2],[3]]})");
  ASSERT_TRUE(std::holds_alternative<server::EmbeddingRequest>(e));
  EXPECT_EQ(std::get<server::EmbeddingRequest>(e).id_lists.size(), 2u);
  for (const char* bad : {R"({"model":"m"})", R"({"model":"m","input":""})",
                          R"({"model":"m","input":[]})", R"({"model":"m","input":[["x"]]})",
                          R"({"model":"m","input":"x","encoding_format":"binary"})"}) {
    EXPECT_TRUE(std::holds_alternative<ApiError>(server::parse_embedding_request(bad))) << bad;
  }
  auto t =
      server::parse_tokenize_request(R"({"model":"m","prompt":"hi","add_special_tokens":false})");
  ASSERT_TRUE(std::holds_alternative<server::TokenizeRequest>(t));
  EXPECT_FALSE(std::get<server::TokenizeRequest>(t).add_special_tokens);
  EXPECT_TRUE(std::holds_alternative<ApiError>(server::parse_tokenize_request(R"({"model":"m"})")));
  auto d = server::parse_detokenize_request(R"({"model":"m","tokens":[1,2]})");
  ASSERT_TRUE(std::holds_alternative<server::DetokenizeRequest>(d));
  EXPECT_TRUE(std::holds_alternative<ApiError>(
      server::parse_detokenize_request(R"({"model":"m","tokens":[-1]})")));
  EXPECT_TRUE(std::holds_alternative<ApiError>(
      server::parse_detokenize_request(R"({"model":"m","tokens":"1"})")));
}

}  // namespace
}  // namespace tandem
