// libFuzzer target: any bytes as the body of each OpenAI endpoint. The parsers
// must return a request or an ApiError; no exception may escape and an error
// must serialize to valid JSON.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "server/openai_request.h"

namespace {

template <typename V>
void check(const V& v) {
  if (const auto* e = std::get_if<tandem::server::ApiError>(&v)) {
    if (e->status < 400 || e->status > 599 || e->message.empty()) __builtin_trap();
    if (nlohmann::json::parse(e->to_json(), nullptr, false).is_discarded()) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  using tandem::server::Endpoint;
  check(tandem::server::parse_completion_request(body, Endpoint::kChat));
  auto c = tandem::server::parse_completion_request(body, Endpoint::kCompletion);
  check(c);
  if (const auto* r = std::get_if<tandem::server::CompletionRequest>(&c)) {
    if (r->n < 1 || r->n > tandem::server::kMaxN || r->stop.size() > tandem::server::kMaxStops)
      __builtin_trap();
    if (r->max_tokens && (*r->max_tokens < 1 || *r->max_tokens > tandem::server::kMaxTokensLimit))
      __builtin_trap();
  }
  check(tandem::server::parse_embedding_request(body));
  check(tandem::server::parse_tokenize_request(body));
  check(tandem::server::parse_detokenize_request(body));
  return 0;
}
