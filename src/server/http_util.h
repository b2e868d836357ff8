// Small helpers the route files of the server share (server.cpp,
// pipeline_routes.cpp): JSON bodies, OpenAI-shaped errors, ids.
#pragma once

#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "server/openai_request.h"

namespace tandem::server::detail {

using Json = nlohmann::ordered_json;

inline std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::string random_id(const char* prefix) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += kHex[rd() % 16];
  return s;
}

inline ApiError api_error(int status, std::string message, std::string type,
                          std::string param = {}, std::string code = {}) {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.type = std::move(type);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

inline void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

// Sends an error; a 429 tells the client when to come back.
inline void send_error(httplib::Response& res, const ApiError& e) {
  if (e.status == 429) res.set_header("Retry-After", "1");
  send_json(res, e.status, e.to_json());
}

// A Prometheus label value: backslash, quote and newline escaped.
inline std::string prom_label(const std::string& v) {
  std::string s;
  for (char c : v) {
    if (c == '\\' || c == '"') s += '\\';
    if (c == '\n') {
      s += "\\n";
      continue;
    }
    s += c;
  }
  return s;
}

}  // namespace tandem::server::detail
