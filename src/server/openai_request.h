// Parsing and validation of OpenAI API request bodies: JSON text in, a
// validated request struct or an OpenAI-shaped error out. Pure functions (no
// model, no I/O), so they are unit-tested and fuzzed on their own. Unknown
// fields are ignored, as OpenAI does; wrong types and out-of-range values name
// the parameter.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tandem::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
  // {"error": {"message", "type", "param", "code"}}
  std::string to_json() const;
};

enum class Endpoint { kChat, kCompletion };

struct CompletionRequest {
  Endpoint kind = Endpoint::kChat;
  std::string model;
  // Chat: [{role, content}] with content flattened to a string.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // Completions: text, or token ids when the prompt was given as integers.
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  bool prompt_is_ids = false;
  std::optional<int64_t> max_tokens;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;                // extension (vLLM's)
  float min_p = 0.0f;               // extension
  float repetition_penalty = 1.0f;  // extension
  std::optional<uint64_t> seed;
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::vector<std::string> stop;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool ignore_eos = false;  // extension
};

struct EmbeddingRequest {
  std::string model;
  std::vector<std::string> texts;              // input as strings
  std::vector<std::vector<int32_t>> id_lists;  // input as token ids
  bool as_ids = false;
  std::string encoding_format = "float";  // or "base64": little-endian float32 bytes
};

struct TokenizeRequest {
  std::string model;
  std::string prompt;
  nlohmann::ordered_json messages;  // null unless given: then the chat template is applied
  bool add_special_tokens = true;
};

struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};

constexpr int64_t kMaxTokensLimit = 1 << 20;  // beyond any context we serve
constexpr int32_t kMaxN = 16;
constexpr size_t kMaxStops = 4;

std::variant<CompletionRequest, ApiError> parse_completion_request(std::string_view body,
                                                                   Endpoint kind);
std::variant<EmbeddingRequest, ApiError> parse_embedding_request(std::string_view body);
std::variant<TokenizeRequest, ApiError> parse_tokenize_request(std::string_view body);
std::variant<DetokenizeRequest, ApiError> parse_detokenize_request(std::string_view body);

}  // namespace tandem::server
