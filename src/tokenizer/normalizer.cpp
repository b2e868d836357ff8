#include "tokenizer/normalizer.h"

#include <vector>

#include "tokenizer/regex.h"
#include "tokenizer/unicode_normalization.h"

namespace tandem::tokenizer {
namespace {

constexpr std::string_view kSupported = "NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, Sequence";

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  std::string normalize(std::string_view text) const override { return normalize_unicode(text, form_); }

 private:
  NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override { return to_lower(text); }
};

// Strips ASCII/Unicode white space at either end (tokenizers' Strip{left, right}).
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view text) const override {
    static constexpr std::string_view kSpace = " \t\n\r\v\f";
    if (left_) {
      size_t b = text.find_first_not_of(kSpace);
      text = b == std::string_view::npos ? std::string_view() : text.substr(b);
    }
    if (right_) {
      size_t e = text.find_last_not_of(kSpace);
      text = e == std::string_view::npos ? std::string_view() : text.substr(0, e + 1);
    }
    return std::string(text);
  }

 private:
  bool left_, right_;
};

// Replaces every match of a literal or regex pattern (Gemma uses it to turn ' ' into '▁').
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}

  std::string normalize(std::string_view text) const override {
    std::string out;
    size_t prev = 0;
    for (const auto& [begin, end] : pattern_.find_all(text)) {
      out.append(text.substr(prev, begin - prev));
      out += content_;
      prev = end;
    }
    out.append(text.substr(prev));
    return out;
  }

 private:
  Regex pattern_;
  std::string content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  std::string normalize(std::string_view text) const override {
    // Hugging Face leaves empty text empty.
    if (text.empty()) return {};
    return prepend_ + std::string(text);
  }

 private:
  std::string prepend_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  std::string normalize(std::string_view text) const override {
    std::string s(text);
    for (const auto& step : steps_) s = step->normalize(s);
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const JsonNode& node) {
  const std::string type = node.at("type").as_string();
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfkd);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(node.at("strip_left").as_bool(), node.at("strip_right").as_bool());
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(make_pattern(node.at("pattern")),
                                               node.at("content").as_string());
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(node.at("prepend").as_string());
  if (type == "Sequence") {
    const JsonNode list = node.at("normalizers");
    list.expect_array();
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(make_normalizer(list.at(i)));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  node.unsupported_type(type, kSupported);
}

}  // namespace tandem::tokenizer
