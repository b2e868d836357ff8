#include "tokenizer/json_node.h"

#include "base/error.h"

namespace tandem::tokenizer {

std::string JsonNode::child_path(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return path_ + "." + std::string(key);
}

std::string JsonNode::child_path(size_t index) const {
  return path_ + "[" + std::to_string(index) + "]";
}

void JsonNode::fail(const std::string& what) const {
  if (path_.empty()) throw Error(*source_ + ": " + what);
  throw Error(*source_ + ": " + path_ + " " + what);
}

void JsonNode::unsupported_type(const std::string& type_name, std::string_view supported) const {
  throw Error(*source_ + ": " + child_path("type") + " '" + type_name +
              "' is not supported (supported: " + std::string(supported) + ")");
}

std::string_view JsonNode::type_name() const {
  switch (value_->type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a number";
    default:
      return "an unexpected value";
  }
}

void JsonNode::wrong_type(std::string_view expected) const {
  fail("must be " + std::string(expected) + ", got " + std::string(type_name()));
}

void JsonNode::expect_object() const {
  if (!value_->is_object()) wrong_type("an object");
}

void JsonNode::expect_array() const {
  if (!value_->is_array()) wrong_type("an array");
}

JsonNode JsonNode::at(std::string_view key) const {
  std::optional<JsonNode> child = find(key);
  if (!child) {
    const bool present = value_->find(std::string(key)) != value_->end();
    JsonNode(*value_, *source_, child_path(key)).fail(present ? "must not be null" : "is missing");
  }
  return *child;
}

std::optional<JsonNode> JsonNode::find(std::string_view key) const {
  expect_object();
  auto it = value_->find(std::string(key));
  if (it == value_->end() || it->is_null()) return std::nullopt;
  if (depth_ >= kMaxJsonDepth) fail("is nested too deeply");
  return JsonNode(*it, *source_, child_path(key), depth_ + 1);
}

JsonNode JsonNode::at(size_t index) const {
  expect_array();
  if (index >= value_->size()) fail("has no element " + std::to_string(index));
  if (depth_ >= kMaxJsonDepth) fail("is nested too deeply");
  return JsonNode((*value_)[index], *source_, child_path(index), depth_ + 1);
}

size_t JsonNode::size() const {
  if (!value_->is_array() && !value_->is_object()) wrong_type("an array or an object");
  return value_->size();
}

std::string JsonNode::as_string() const {
  if (!value_->is_string()) wrong_type("a string");
  return value_->get<std::string>();
}

bool JsonNode::as_bool() const {
  if (!value_->is_boolean()) wrong_type("a boolean");
  return value_->get<bool>();
}

int64_t JsonNode::as_int() const {
  if (value_->is_number_unsigned()) {
    const uint64_t v = value_->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) fail("is too large");
    return static_cast<int64_t>(v);
  }
  if (!value_->is_number_integer()) wrong_type("an integer");
  return value_->get<int64_t>();
}

int32_t JsonNode::as_token_id() const {
  const int64_t v = as_int();
  if (v < 0 || v >= kMaxTokenId) {
    fail("is " + std::to_string(v) + ", outside the supported id range [0, " +
         std::to_string(kMaxTokenId) + ")");
  }
  return static_cast<int32_t>(v);
}

bool JsonNode::get_bool(std::string_view key, bool fallback) const {
  std::optional<JsonNode> child = find(key);
  return child ? child->as_bool() : fallback;
}

std::optional<std::string> JsonNode::get_string(std::string_view key) const {
  std::optional<JsonNode> child = find(key);
  if (!child) return std::nullopt;
  return child->as_string();
}

}  // namespace tandem::tokenizer
