#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace tandem::tokenizer {
namespace {

constexpr std::string_view kSupported =
    "ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence";

// Maps alphabet characters back to bytes and repairs the byte string into valid UTF-8
// (String::from_utf8_lossy). A token with a character outside the alphabet (an added token
// such as "<|im_start|>" containing a space) contributes its own bytes unchanged.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      const size_t mark = bytes.size();
      bool in_alphabet = true;
      for (size_t pos = 0; pos < token.size();) {
        const utf8::Char c = utf8::decode(token, pos);
        const int b = c.valid ? byte_level::byte_of_char(c.cp) : -1;
        if (b < 0) {
          in_alphabet = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
        pos += c.len;
      }
      if (!in_alphabet) {
        bytes.resize(mark);
        bytes += token;
      }
    }
    tokens.assign(1, utf8::to_valid_lossy(bytes));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string out;
      size_t prev = 0;
      for (const auto& [begin, end] : pattern_.find_all(token)) {
        out.append(token, prev, begin - prev);
        out += content_;
        prev = end;
      }
      out.append(token, prev);
      token.swap(out);
    }
  }

 private:
  Regex pattern_;
  std::string content_;
};

// "<0x41>" tokens (SentencePiece byte fallback) become bytes; a run of them that is not valid
// UTF-8 becomes one U+FFFD per byte, as Hugging Face does.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    const auto flush = [&] {
      if (pending.empty()) return;
      if (utf8::is_valid(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back(utf8::kReplacementUtf8);
      }
      pending.clear();
    };
    for (std::string& token : tokens) {
      if (int b = parse_byte(token); b >= 0) {
        pending.push_back(static_cast<char>(b));
        continue;
      }
      flush();
      out.push_back(std::move(token));
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int parse_byte(std::string_view t) {
    if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
    const int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      size_t begin = 0, end = token.size();
      for (size_t i = 0;
           i < start_ && token.compare(begin, content_.size(), content_) == 0 && begin < end; ++i) {
        begin += content_.size();
      }
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

// The replacement character becomes a space, except in the first token when the pre-tokenizer
// prepended one (Hugging Face drops every replacement of that token, not only the leading one).
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool prepended)
      : replacement_(std::move(replacement)), prepended_(prepended) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& token = tokens[i];
      std::string out;
      for (size_t pos = token.find(replacement_), prev = 0;; pos = token.find(replacement_, prev)) {
        out.append(token, prev, pos == std::string::npos ? std::string::npos : pos - prev);
        if (pos == std::string::npos) break;
        if (i != 0 || !prepended_) out.push_back(' ');
        prev = pos + replacement_.size();
      }
      token.swap(out);
    }
  }

 private:
  std::string replacement_;
  bool prepended_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const JsonNode& node) {
  const std::string type = node.at("type").as_string();
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(make_pattern(node.at("pattern")),
                                            node.at("content").as_string());
  }
  if (type == "Metaspace") {
    const JsonNode replacement = node.at("replacement");
    const std::string r = replacement.as_string();
    if (r.empty() || utf8::decode(r, 0).len != r.size()) replacement.fail("must be one character");
    // Files from tokenizers < 0.19 have add_prefix_space instead of prepend_scheme.
    bool prepended = node.get_bool("add_prefix_space", true);
    if (auto scheme = node.find("prepend_scheme")) prepended = scheme->as_string() != "never";
    return std::make_unique<MetaspaceDecoder>(r, prepended);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const JsonNode content = node.at("content");
    const std::string c = content.as_string();
    if (c.empty() || utf8::decode(c, 0).len != c.size()) content.fail("must be one character");
    const int64_t start = node.at("start").as_int(), stop = node.at("stop").as_int();
    if (start < 0 || stop < 0) node.fail("start and stop must not be negative");
    return std::make_unique<StripDecoder>(c, static_cast<size_t>(start), static_cast<size_t>(stop));
  }
  if (type == "Sequence") {
    const JsonNode list = node.at("decoders");
    list.expect_array();
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(make_decoder(list.at(i)));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  node.unsupported_type(type, kSupported);
}

}  // namespace tandem::tokenizer
