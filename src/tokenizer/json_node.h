// Read-only access to tokenizer.json values that remembers where each value came from, so a
// problem is reported as "<file>: <field path> <what is wrong>" instead of a bare
// nlohmann exception. Every accessor checks the JSON type it expects.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::tokenizer {

class JsonNode {
 public:
  JsonNode(const nlohmann::json& value, const std::string& source, std::string path, int depth = 0)
      : value_(&value), source_(&source), path_(std::move(path)), depth_(depth) {}

  const nlohmann::json& value() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& source() const { return *source_; }
  bool is_null() const { return value_->is_null(); }

  // A member that must be present and not null.
  JsonNode at(std::string_view key) const;
  // A member that may be absent or null.
  std::optional<JsonNode> find(std::string_view key) const;
  JsonNode at(size_t index) const;
  size_t size() const;  // elements of an array or members of an object (checked)

  std::string as_string() const;
  bool as_bool() const;
  int64_t as_int() const;
  // An integer token id: 0 <= id < kMaxTokenId, so id tables stay a sane size.
  int32_t as_token_id() const;
  void expect_object() const;
  void expect_array() const;

  // Convenience for optional scalar members with the Hugging Face default.
  bool get_bool(std::string_view key, bool fallback) const;
  std::optional<std::string> get_string(std::string_view key) const;

  // Child path helpers for error messages: "model" + "vocab" -> "model.vocab".
  std::string child_path(std::string_view key) const;
  std::string child_path(size_t index) const;

  [[noreturn]] void fail(const std::string& what) const;
  // "<file>: <path>.type '<name>' is not supported (supported: <list>)".
  [[noreturn]] void unsupported_type(const std::string& type_name,
                                     std::string_view supported) const;

 private:
  std::string_view type_name() const;
  [[noreturn]] void wrong_type(std::string_view expected) const;

  const nlohmann::json* value_;
  const std::string* source_;
  std::string path_;
  int depth_;  // nesting below the root; bounded so nested Sequences cannot exhaust the stack
};

inline constexpr int kMaxJsonDepth = 48;

// Ids above this would make per-id tables absurdly large; real vocabularies stay far below.
inline constexpr int64_t kMaxTokenId = int64_t{1} << 24;

}  // namespace tandem::tokenizer
