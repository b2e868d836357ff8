#include "tokenizer/pre_tokenizer.h"

#include <string>
#include <utility>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace tandem::tokenizer {
namespace {

constexpr std::string_view kSupported = "ByteLevel, Metaspace, Split, Sequence";

// GPT-2's pattern, which Hugging Face hard-codes for ByteLevel(use_regex=true).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Hugging Face's NormalizedString::split, streamed. The text is cut into matches and the gaps
// between them (Pattern::find_matches), and `behavior` decides what is dropped or glued
// together. Spans arrive one at a time and at most one is held back.
class SpanSplitter {
 public:
  SpanSplitter(SplitBehavior behavior, std::string_view text, PieceSink sink)
      : behavior_(behavior), text_(text), sink_(sink) {}

  void add(size_t begin, size_t end, bool is_match) {
    switch (behavior_) {
      case SplitBehavior::kRemoved:
        if (!is_match) emit(begin, end);
        break;
      case SplitBehavior::kIsolated:
        emit(begin, end);
        break;
      case SplitBehavior::kContiguous:
        // A run of matches, or of non-matches, becomes one piece.
        if (held_ && is_match == previous_match_) {
          held_end_ = end;
        } else {
          release();
          hold(begin, end);
        }
        break;
      case SplitBehavior::kMergedWithPrevious:
        if (held_ && is_match && !previous_match_) {
          held_end_ = end;
        } else {
          release();
          hold(begin, end);
        }
        break;
      case SplitBehavior::kMergedWithNext:
        // Hugging Face folds from the right: a match joins the span after it when that span
        // is not a match. Forward, that means holding a match until the next span arrives.
        if (held_ && !is_match) {
          held_ = false;
          emit(held_begin_, end);
        } else {
          release();
          if (is_match) {
            hold(begin, end);
          } else {
            emit(begin, end);
          }
        }
        break;
    }
    previous_match_ = is_match;
  }

  void finish() { release(); }

 private:
  void emit(size_t begin, size_t end) {
    if (end > begin) sink_(text_.substr(begin, end - begin));
  }
  void hold(size_t begin, size_t end) { held_ = true, held_begin_ = begin, held_end_ = end; }
  void release() {
    if (held_) emit(held_begin_, held_end_);
    held_ = false;
  }

  SplitBehavior behavior_;
  std::string_view text_;
  PieceSink sink_;
  bool previous_match_ = false;
  bool held_ = false;
  size_t held_begin_ = 0, held_end_ = 0;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}

  void pre_tokenize(std::string_view text, bool /*at_start*/, PieceSink sink) const override {
    if (text.empty()) return;
    SpanSplitter splitter(behavior_, text, sink);
    size_t prev = 0;
    regex_.for_each_match(text, [&](size_t begin, size_t end) {
      if (prev != begin) splitter.add(prev, begin, invert_);
      splitter.add(begin, end, !invert_);
      prev = end;
    });
    if (prev != text.size()) splitter.add(prev, text.size(), invert_);
    splitter.finish();
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<SplitPreTokenizer> split)
      : add_prefix_space_(add_prefix_space), split_(std::move(split)) {}

  void pre_tokenize(std::string_view text, bool /*at_start*/, PieceSink sink) const override {
    if (text.empty()) return;
    std::string prefixed;
    if (add_prefix_space_ && text[0] != ' ') {
      prefixed.reserve(text.size() + 1);
      prefixed.push_back(' ');
      prefixed.append(text);
      text = prefixed;
    }
    std::string mapped;
    const auto map_bytes = [&](std::string_view piece) {
      mapped.clear();
      byte_level::encode_bytes(piece, mapped);
      sink(mapped);
    };
    if (split_) {
      split_->pre_tokenize(text, true, map_bytes);
    } else {
      map_bytes(text);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<SplitPreTokenizer> split_;  // GPT-2 regex, Isolated, when use_regex
};

// SentencePiece-style words (Llama 2, Mistral): spaces become the replacement character
// (U+2581), which is prepended per the scheme, and with `split` each piece starts at one.
class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}

  void pre_tokenize(std::string_view text, bool at_start, PieceSink sink) const override {
    if (text.empty()) return;
    std::string out;
    out.reserve(text.size() + text.size() / 4 + replacement_.size());
    const bool starts_with_space = text.front() == ' ';
    // Hugging Face replaces first, so a leading space already provides the prefix.
    if (!starts_with_space && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && at_start))) {
      if (text.substr(0, replacement_.size()) != replacement_) out += replacement_;
    }
    for (char c : text) {
      if (c == ' ') {
        out += replacement_;
      } else {
        out.push_back(c);
      }
    }
    if (!split_) {
      sink(out);
      return;
    }
    // Split on the replacement, MergedWithNext: each piece but maybe the first starts with it.
    SpanSplitter splitter(SplitBehavior::kMergedWithNext, out, sink);
    size_t prev = 0;
    for (size_t pos = out.find(replacement_); pos != std::string::npos;
         pos = out.find(replacement_, prev)) {
      if (prev != pos) splitter.add(prev, pos, false);
      splitter.add(pos, pos + replacement_.size(), true);
      prev = pos + replacement_.size();
    }
    if (prev != out.size()) splitter.add(prev, out.size(), false);
    splitter.finish();
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

std::unique_ptr<PreTokenizer> make_metaspace(const JsonNode& node) {
  const JsonNode replacement = node.at("replacement");
  std::string rep = replacement.as_string();
  if (rep.empty() || utf8::decode(rep, 0).len != rep.size()) replacement.fail("must be one character");
  // Files from tokenizers < 0.19 have add_prefix_space instead of prepend_scheme.
  auto prepend = node.get_bool("add_prefix_space", true) ? MetaspacePreTokenizer::Prepend::kAlways
                                                          : MetaspacePreTokenizer::Prepend::kNever;
  if (auto scheme = node.find("prepend_scheme")) {
    const std::string name = scheme->as_string();
    if (name == "always") {
      prepend = MetaspacePreTokenizer::Prepend::kAlways;
    } else if (name == "first") {
      prepend = MetaspacePreTokenizer::Prepend::kFirst;
    } else if (name == "never") {
      prepend = MetaspacePreTokenizer::Prepend::kNever;
    } else {
      scheme->fail("'" + name + "' is not supported (supported: always, first, never)");
    }
  }
  return std::make_unique<MetaspacePreTokenizer>(std::move(rep), prepend, node.get_bool("split", true));
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void pre_tokenize(std::string_view text, bool /*at_start*/, PieceSink sink) const override { run(0, text, sink); }

 private:
  void run(size_t step, std::string_view text, PieceSink sink) const {
    if (step == steps_.size()) {
      sink(text);
      return;
    }
    steps_[step]->pre_tokenize(text, [&](std::string_view piece) { run(step + 1, piece, sink); });
  }

  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

SplitBehavior parse_behavior(const JsonNode& node) {
  const std::string name = node.as_string();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  node.fail("'" + name +
            "' is not supported (supported: Removed, Isolated, MergedWithPrevious, "
            "MergedWithNext, Contiguous)");
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonNode& node) {
  const std::string type = node.at("type").as_string();
  if (type == "ByteLevel") {
    // Missing flags take Hugging Face's ByteLevel::default() values.
    const bool add_prefix_space = node.get_bool("add_prefix_space", true);
    std::unique_ptr<SplitPreTokenizer> split;
    if (node.get_bool("use_regex", true)) {
      split = std::make_unique<SplitPreTokenizer>(
          Regex(kGpt2Pattern, node.source() + ": " + node.path() + " (GPT-2 pattern)"),
          SplitBehavior::kIsolated, false);
    }
    return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, std::move(split));
  }
  if (type == "Metaspace") return make_metaspace(node);
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(make_pattern(node.at("pattern")),
                                               parse_behavior(node.at("behavior")),
                                               node.get_bool("invert", false));
  }
  if (type == "Sequence") {
    const JsonNode list = node.at("pretokenizers");
    list.expect_array();
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(make_pre_tokenizer(list.at(i)));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  node.unsupported_type(type, kSupported);
}

}  // namespace tandem::tokenizer
