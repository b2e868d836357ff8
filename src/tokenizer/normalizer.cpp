#include "tokenizer/normalizer.h"

#include <vector>

#include "tokenizer/regex.h"
#include "tokenizer/unicode_nfc.h"

namespace tandem::tokenizer {
namespace {

constexpr std::string_view kSupported = "NFC, Replace, Prepend, Sequence";

class NfcNormalizer final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override { return to_nfc(text); }
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
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
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
