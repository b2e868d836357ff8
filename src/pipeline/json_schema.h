// JSON-schema constrained decoding for the `extract` step. A schema in the
// supported subset compiles into a tree of SchemaNodes; a JsonMatcher walks the
// compact JSON text of that tree byte by byte with a stack of frames (a
// pushdown automaton), and JsonConstraint masks every vocabulary token whose
// bytes the matcher would refuse. The output has no optional whitespace and
// lists every property of an object in the schema's order,
// so it is deterministic in shape and bounded: strings, integers and arrays
// have length caps (maxLength / maxItems, or defaults), and when the request's
// token budget runs low only tokens that still leave room to close the value
// stay allowed. Tokens work at the byte level: a byte-level BPE token may hold
// half a UTF-8 character, and the matcher checks UTF-8 across tokens.
//
// Subset: type object (properties, required; additionalProperties false is
// implied), string (enum, minLength, maxLength), integer, number, boolean,
// null, array (items, minItems, maxItems), enum / const of scalars; title,
// description, default, examples and $schema are ignored. Any other keyword is
// a SchemaError naming it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "engine/constraint.h"
#include "pipeline/config.h"
#include "tokenizer/tokenizer.h"

namespace tandem::pipeline {

// A schema outside the subset. `where` is the path inside the schema (keys and array
// indices), so a config parser can point at the line; the message starts with that path.
class SchemaError : public ConfigError {
 public:
  SchemaError(std::vector<std::string> where, const std::string& message);
  const std::vector<std::string>& where() const { return where_; }
  const std::string& detail() const { return detail_; }

 private:
  std::vector<std::string> where_;
  std::string detail_;
};

// Defaults for values the schema leaves unbounded.
inline constexpr int64_t kDefaultMaxLength = 64;  // string characters
inline constexpr int64_t kDefaultMaxItems = 8;    // array items
inline constexpr int32_t kMaxIntegerDigits = 12;
inline constexpr int32_t kMaxFractionDigits = 6;
inline constexpr int kMaxSchemaDepth = 16;

struct SchemaNode {
  enum class Kind : uint8_t { kObject, kArray, kString, kInteger, kNumber, kLiteral };
  Kind kind = Kind::kLiteral;
  // kObject: pieces[i] is the text before child i ('{"key":' or ',"key":'), the last one '}'.
  std::vector<std::string> pieces;
  std::vector<SchemaNode> children;  // kObject: property values; kArray: {item}
  int64_t min_items = 0, max_items = kDefaultMaxItems;
  int64_t min_length = 0, max_length = kDefaultMaxLength;
  std::vector<std::string> literals;  // kLiteral: the serialized choices
  int64_t min_bytes = 0;              // shortest serialization
};

// Throws SchemaError. The top level may be any supported schema. Object properties are
// produced in the schema's key order: declared order from an ordered_json (as the config
// keeps it), sorted from a json.
SchemaNode compile_schema(const nlohmann::ordered_json& schema);
SchemaNode compile_schema(const nlohmann::json& schema);

// Byte-level automaton over the compact serialization of a compiled schema. Cheap to copy.
class JsonMatcher {
 public:
  explicit JsonMatcher(const SchemaNode& root);
  // False (and the state unchanged only as far as the caller copies it) when `c` cannot come next.
  bool feed(uint8_t c);
  bool feed(std::string_view bytes) {
    for (char c : bytes) {
      if (!feed(static_cast<uint8_t>(c))) return false;
    }
    return true;
  }
  // The value is whole and nothing may follow.
  bool done() const { return stack_.empty(); }
  // The value could end here (e.g. after the digits of a top-level number).
  bool can_end() const;
  // Inside a string with no UTF-8 character half done: how many more characters fit; else -1.
  int64_t string_room() const;
  // The fewest bytes that complete the value from here.
  int64_t min_close() const;

 private:
  struct Frame {
    const SchemaNode* node;
    int32_t a = 0, b = 0, c = 0, d = 0;
  };
  void push(const SchemaNode& n) { stack_.push_back(Frame{&n}); }
  static bool frame_can_end(const Frame& f);
  std::vector<Frame> stack_;
};

// Each token's bytes, computed once per tokenizer. Special tokens (eos among them) and
// tokens without bytes are never allowed by a constraint.
class VocabBytes {
 public:
  explicit VocabBytes(const tokenizer::Tokenizer& tok);
  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }
  // Token ids whose bytes start with b.
  const std::vector<int32_t>& starting_with(uint8_t b) const { return by_first_[b]; }
  // The characters of a token that is plain string content (printable ASCII other than '"'
  // and '\\', or whole UTF-8 characters); -1 for any other token. Lets the mask pass such
  // tokens inside a string without walking their bytes.
  int32_t plain_chars(int32_t id) const { return plain_[static_cast<size_t>(id)]; }

 private:
  std::vector<std::string> bytes_;
  std::array<std::vector<int32_t>, 256> by_first_;
  std::vector<int32_t> plain_;
};

class JsonConstraint : public engine::Constraint {
 public:
  // `max_tokens`: the request's budget, so the value can be closed in time.
  JsonConstraint(std::shared_ptr<const SchemaNode> schema, std::shared_ptr<const VocabBytes> vocab,
                 int64_t max_tokens);
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;
  bool complete() const override { return matcher_.done(); }
  // The bytes accepted so far.
  const std::string& text() const { return text_; }
  // Tokens allowed next (what mask() keeps), sorted.
  std::vector<int32_t> allowed();

 private:
  std::shared_ptr<const SchemaNode> schema_;
  std::shared_ptr<const VocabBytes> vocab_;
  JsonMatcher matcher_, scratch_;
  int64_t remaining_;
  std::string text_;
};

// Checks `value` against a schema of the supported subset. On failure, `why` (if given) says
// where and what.
bool validate(const nlohmann::json& value, const nlohmann::json& schema,
              std::string* why = nullptr);

}  // namespace tandem::pipeline
