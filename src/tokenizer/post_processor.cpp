#include "tokenizer/post_processor.h"

#include <string>

#include "tokenizer/string_map.h"

namespace tandem::tokenizer {
namespace {

constexpr std::string_view kSupported = "TemplateProcessing, ByteLevel, Sequence";

// ByteLevel only trims offsets, which the engine does not track: ids pass through.
class ByteLevelPostProcessor final : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

// The "single" template of TemplateProcessing, e.g. [<bos>] $A. Pair templates are for
// sentence-pair encoders, which this engine never builds.
class TemplatePostProcessor final : public PostProcessor {
 public:
  struct Piece {
    bool is_sequence;
    std::vector<int32_t> ids;  // of the special token, when !is_sequence
  };
  explicit TemplatePostProcessor(std::vector<Piece> single) : single_(std::move(single)) {}

  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 8);
    for (const Piece& p : single_) {
      if (p.is_sequence) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else if (add_special_tokens) {
        out.insert(out.end(), p.ids.begin(), p.ids.end());
      }
    }
    ids = std::move(out);
  }

 private:
  std::vector<Piece> single_;
};

class SequencePostProcessor final : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> steps)
      : steps_(std::move(steps)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& step : steps_) step->process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

std::unique_ptr<PostProcessor> make_template(const JsonNode& node) {
  // special_tokens: {"<bos>": {"id": "<bos>", "ids": [1], "tokens": ["<bos>"]}, ...}
  StringMap<std::vector<int32_t>> specials;
  if (auto map = node.find("special_tokens")) {
    map->expect_object();
    for (const auto& [name, value] : map->value().items()) {
      const JsonNode entry(value, node.source(), map->child_path(name));
      const JsonNode ids = entry.at("ids");
      ids.expect_array();
      std::vector<int32_t> list;
      for (size_t i = 0; i < ids.size(); ++i) list.push_back(ids.at(i).as_token_id());
      specials.insert_or_assign(name, std::move(list));
    }
  }
  const JsonNode single = node.at("single");
  single.expect_array();
  std::vector<TemplatePostProcessor::Piece> pieces;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonNode piece = single.at(i);
    piece.expect_object();
    if (auto seq = piece.find("Sequence")) {
      const std::string id = seq->at("id").as_string();
      if (id != "A") seq->at("id").fail("is '" + id + "'; a single template can only use A");
      pieces.push_back({true, {}});
    } else if (auto special = piece.find("SpecialToken")) {
      const JsonNode id = special->at("id");
      const std::string name = id.as_string();
      auto it = specials.find(name);
      if (it == specials.end()) id.fail("'" + name + "' is not in special_tokens");
      pieces.push_back({false, it->second});
    } else {
      piece.fail("must have a \"Sequence\" or \"SpecialToken\" member");
    }
  }
  return std::make_unique<TemplatePostProcessor>(std::move(pieces));
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const JsonNode& node) {
  const std::string type = node.at("type").as_string();
  if (type == "ByteLevel") return std::make_unique<ByteLevelPostProcessor>();
  if (type == "TemplateProcessing") return make_template(node);
  if (type == "Sequence") {
    const JsonNode list = node.at("processors");
    list.expect_array();
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(make_post_processor(list.at(i)));
    return std::make_unique<SequencePostProcessor>(std::move(steps));
  }
  node.unsupported_type(type, kSupported);
}

}  // namespace tandem::tokenizer
