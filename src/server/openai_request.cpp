#include "server/openai_request.h"

#include <cmath>
#include <limits>

namespace tandem::server {
namespace {

using Json = nlohmann::ordered_json;

ApiError bad(std::string message, std::string param = {}) {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

// Each getter returns an error message when the field has the wrong type or
// range; absent and null fields keep the default.
struct Fields {
  const Json& obj;
  std::optional<ApiError> err;

  const Json* get(const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }
  void fail(std::string msg, const char* key) {
    if (!err) err = bad(std::move(msg), key);
  }
  void str(const char* key, std::string& out, bool required = false) {
    const Json* v = get(key);
    if (v == nullptr) {
      if (required) fail(std::string("'") + key + "' is required", key);
      return;
    }
    if (!v->is_string()) return fail(std::string("'") + key + "' must be a string", key);
    out = v->get<std::string>();
  }
  void boolean(const char* key, bool& out) {
    const Json* v = get(key);
    if (v == nullptr) return;
    if (!v->is_boolean()) return fail(std::string("'") + key + "' must be a boolean", key);
    out = v->get<bool>();
  }
  void number(const char* key, float& out, double lo, double hi) {
    const Json* v = get(key);
    if (v == nullptr) return;
    if (!v->is_number()) return fail(std::string("'") + key + "' must be a number", key);
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi)) {
      return fail(std::string("'") + key + "' must be between " + fmt(lo) + " and " + fmt(hi) +
                      ", got " + fmt(d),
                  key);
    }
    out = static_cast<float>(d);
  }
  template <typename T>
  bool integer(const char* key, T& out, int64_t lo, int64_t hi) {
    const Json* v = get(key);
    if (v == nullptr) return false;
    if (!v->is_number_integer()) {
      // 16.0 is an integer to JSON clients that only have doubles.
      if (v->is_number_float()) {
        const double d = v->get<double>();
        if (std::floor(d) == d && std::fabs(d) < 9e15) {
          return check_range(key, static_cast<int64_t>(d), out, lo, hi);
        }
      }
      fail(std::string("'") + key + "' must be an integer", key);
      return false;
    }
    if (v->is_number_unsigned() &&
        v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(std::string("'") + key + "' is out of range", key);
      return false;
    }
    return check_range(key, v->get<int64_t>(), out, lo, hi);
  }
  template <typename T>
  bool check_range(const char* key, int64_t x, T& out, int64_t lo, int64_t hi) {
    if (x < lo || x > hi) {
      fail(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " +
               std::to_string(hi) + ", got " + std::to_string(x),
           key);
      return false;
    }
    out = static_cast<T>(x);
    return true;
  }
  static std::string fmt(double d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", d);
    return buf;
  }
};

std::optional<ApiError> parse_object(std::string_view body, Json& out) {
  try {
    out = Json::parse(body.begin(), body.end());
  } catch (const nlohmann::json::exception& e) {
    return bad(std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!out.is_object()) return bad("the request body must be a JSON object");
  return std::nullopt;
}

// Message content: a string, null, or an array of {"type": "text", "text": ...} parts.
std::optional<std::string> content_text(const Json& c, std::string& why) {
  if (c.is_null()) return std::string();
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array()) {
    std::string text;
    for (const auto& part : c) {
      if (!part.is_object()) {
        why = "content parts must be objects";
        return std::nullopt;
      }
      auto t = part.find("type");
      if (t == part.end() || !t->is_string() || *t != "text") {
        why = "only content parts of type 'text' are supported";
        return std::nullopt;
      }
      auto tx = part.find("text");
      if (tx == part.end() || !tx->is_string()) {
        why = "a text content part needs a string 'text'";
        return std::nullopt;
      }
      text += tx->get<std::string>();
    }
    return text;
  }
  why = "content must be a string or an array of text parts";
  return std::nullopt;
}

std::optional<ApiError> parse_messages(const Json& obj, Json& out) {
  auto it = obj.find("messages");
  if (it == obj.end() || it->is_null()) return bad("'messages' is required", "messages");
  if (!it->is_array()) return bad("'messages' must be an array", "messages");
  if (it->empty()) return bad("'messages' must contain at least one message", "messages");
  out = Json::array();
  size_t i = 0;
  for (const auto& m : *it) {
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return bad(param + " must be an object", param);
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      return bad(param + ".role must be a string", param + ".role");
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant" && r != "developer" && r != "tool") {
      return bad(
          param + ".role must be one of system, developer, user, assistant, tool; got '" + r + "'",
          param + ".role");
    }
    std::string why;
    auto content = m.find("content");
    std::optional<std::string> text = content == m.end() ? std::optional<std::string>(std::string())
                                                         : content_text(*content, why);
    if (!text) return bad(param + ".content: " + why, param + ".content");
    // The templates know "system", not OpenAI's newer "developer".
    out.push_back(Json{{"role", r == "developer" ? "system" : r}, {"content", *text}});
    ++i;
  }
  return std::nullopt;
}

std::optional<ApiError> parse_stop(const Json& obj, std::vector<std::string>& out) {
  auto it = obj.find("stop");
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    if (!it->get<std::string>().empty()) out.push_back(it->get<std::string>());
    return std::nullopt;
  }
  if (!it->is_array()) return bad("'stop' must be a string or an array of strings", "stop");
  if (it->size() > kMaxStops)
    return bad("'stop' may hold at most " + std::to_string(kMaxStops) + " strings", "stop");
  for (const auto& s : *it) {
    if (!s.is_string()) return bad("'stop' must be a string or an array of strings", "stop");
    if (!s.get<std::string>().empty()) out.push_back(s.get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> id_list(const Json& v, std::vector<int32_t>& out,
                                const std::string& param) {
  for (const auto& x : v) {
    if (!x.is_number_integer()) return bad("'" + param + "' must hold integers", param);
    if (x.is_number_unsigned() ? x.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)
                               : (x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)) {
      return bad("'" + param + "' holds an id out of range", param);
    }
    out.push_back(static_cast<int32_t>(x.get<int64_t>()));
  }
  return std::nullopt;
}

std::optional<ApiError> parse_prompt(const Json& obj, CompletionRequest& r) {
  auto it = obj.find("prompt");
  if (it == obj.end() || it->is_null()) return bad("'prompt' is required", "prompt");
  if (it->is_string()) {
    r.prompt = it->get<std::string>();
  } else if (it->is_array() && !it->empty() && (*it)[0].is_string()) {
    if (it->size() != 1)
      return bad("'prompt' as an array of strings must hold exactly one string here", "prompt");
    r.prompt = (*it)[0].get<std::string>();
  } else if (it->is_array() && !it->empty() && (*it)[0].is_number()) {
    r.prompt_is_ids = true;
    if (auto e = id_list(*it, r.prompt_ids, "prompt")) return e;
  } else {
    return bad("'prompt' must be a string, an array of one string, or an array of token ids",
               "prompt");
  }
  if (!r.prompt_is_ids && r.prompt.empty()) return bad("'prompt' must not be empty", "prompt");
  return std::nullopt;
}

}  // namespace

std::string ApiError::to_json() const {
  Json e = {{"message", message},
            {"type", type},
            {"param", param.empty() ? Json(nullptr) : Json(param)},
            {"code", code.empty() ? Json(nullptr) : Json(code)}};
  return Json{{"error", e}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::variant<CompletionRequest, ApiError> parse_completion_request(std::string_view body,
                                                                   Endpoint kind) {
  Json obj;
  if (auto e = parse_object(body, obj)) return *e;
  CompletionRequest r;
  r.kind = kind;
  Fields f{obj, std::nullopt};
  f.str("model", r.model, true);
  if (f.err) return *f.err;
  if (kind == Endpoint::kChat) {
    if (auto e = parse_messages(obj, r.messages)) return *e;
  } else {
    if (auto e = parse_prompt(obj, r)) return *e;
  }
  int64_t mt = 0;
  if (f.integer("max_tokens", mt, 1, kMaxTokensLimit)) r.max_tokens = mt;
  if (kind == Endpoint::kChat && f.integer("max_completion_tokens", mt, 1, kMaxTokensLimit))
    r.max_tokens = mt;
  f.number("temperature", r.temperature, 0.0, 2.0);
  f.number("top_p", r.top_p, 1e-9, 1.0);
  f.integer("top_k", r.top_k, -1, 1 << 20);
  if (r.top_k < 0) r.top_k = 0;
  f.number("min_p", r.min_p, 0.0, 1.0);
  f.number("repetition_penalty", r.repetition_penalty, 1e-3, 100.0);
  int64_t seed = 0;
  if (f.integer("seed", seed, std::numeric_limits<int64_t>::min(),
                std::numeric_limits<int64_t>::max())) {
    r.seed = static_cast<uint64_t>(seed);
  }
  f.integer("n", r.n, 1, kMaxN);
  f.boolean("stream", r.stream);
  f.boolean("ignore_eos", r.ignore_eos);
  if (const Json* so = f.get("stream_options")) {
    if (!so->is_object()) {
      f.fail("'stream_options' must be an object", "stream_options");
    } else if (auto iu = so->find("include_usage"); iu != so->end() && !iu->is_null()) {
      if (!iu->is_boolean()) {
        f.fail("'stream_options.include_usage' must be a boolean", "stream_options");
      } else {
        r.include_usage = iu->get<bool>();
      }
    }
  }
  if (kind == Endpoint::kChat) {
    f.boolean("logprobs", r.logprobs);
    if (f.integer("top_logprobs", r.top_logprobs, 0, 20) && !r.logprobs && !f.err) {
      f.fail("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
    }
  } else {
    // Completions: logprobs is the number of alternatives (0..5).
    if (f.integer("logprobs", r.top_logprobs, 0, 5)) r.logprobs = true;
  }
  if (f.err) return *f.err;
  if (auto e = parse_stop(obj, r.stop)) return *e;
  return r;
}

std::variant<EmbeddingRequest, ApiError> parse_embedding_request(std::string_view body) {
  Json obj;
  if (auto e = parse_object(body, obj)) return *e;
  EmbeddingRequest r;
  Fields f{obj, std::nullopt};
  f.str("model", r.model, true);
  f.str("encoding_format", r.encoding_format);
  if (f.err) return *f.err;
  if (r.encoding_format != "float" && r.encoding_format != "base64") {
    return bad("'encoding_format' must be 'float' or 'base64'", "encoding_format");
  }
  auto it = obj.find("input");
  if (it == obj.end() || it->is_null()) return bad("'input' is required", "input");
  const Json& in = *it;
  if (in.is_string()) {
    r.texts.push_back(in.get<std::string>());
  } else if (in.is_array() && !in.empty() && in[0].is_string()) {
    for (const auto& s : in) {
      if (!s.is_string())
        return bad("'input' must be a string, strings, token ids or lists of token ids", "input");
      r.texts.push_back(s.get<std::string>());
    }
  } else if (in.is_array() && !in.empty() && in[0].is_number()) {
    r.as_ids = true;
    r.id_lists.emplace_back();
    if (auto e = id_list(in, r.id_lists.back(), "input")) return *e;
  } else if (in.is_array() && !in.empty() && in[0].is_array()) {
    r.as_ids = true;
    for (const auto& l : in) {
      if (!l.is_array())
        return bad("'input' must be a string, strings, token ids or lists of token ids", "input");
      r.id_lists.emplace_back();
      if (auto e = id_list(l, r.id_lists.back(), "input")) return *e;
    }
  } else {
    return bad("'input' must be a non-empty string, strings, token ids or lists of token ids",
               "input");
  }
  const size_t count = r.as_ids ? r.id_lists.size() : r.texts.size();
  if (count > 256) return bad("'input' may hold at most 256 items", "input");
  for (const auto& s : r.texts) {
    if (s.empty()) return bad("'input' must not contain empty strings", "input");
  }
  for (const auto& l : r.id_lists) {
    if (l.empty()) return bad("'input' must not contain empty token lists", "input");
  }
  return r;
}

std::variant<TokenizeRequest, ApiError> parse_tokenize_request(std::string_view body) {
  Json obj;
  if (auto e = parse_object(body, obj)) return *e;
  TokenizeRequest r;
  Fields f{obj, std::nullopt};
  f.str("model", r.model, true);
  f.boolean("add_special_tokens", r.add_special_tokens);
  if (f.err) return *f.err;
  if (obj.contains("messages")) {
    if (auto e = parse_messages(obj, r.messages)) return *e;
  } else {
    f.str("prompt", r.prompt, true);
    if (f.err) return *f.err;
  }
  return r;
}

std::variant<DetokenizeRequest, ApiError> parse_detokenize_request(std::string_view body) {
  Json obj;
  if (auto e = parse_object(body, obj)) return *e;
  DetokenizeRequest r;
  Fields f{obj, std::nullopt};
  f.str("model", r.model, true);
  if (f.err) return *f.err;
  auto it = obj.find("tokens");
  if (it == obj.end() || !it->is_array())
    return bad("'tokens' must be an array of token ids", "tokens");
  if (auto e = id_list(*it, r.tokens, "tokens")) return *e;
  return r;
}

}  // namespace tandem::server
