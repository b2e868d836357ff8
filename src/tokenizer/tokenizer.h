// Text <-> token ids, loaded from a Hugging Face tokenizer.json and matching the Hugging Face
// `tokenizers` library id for id. The pipeline is the library's: added tokens are cut out,
// the rest is normalized, pre-tokenized into pieces and run through the model, then the
// post-processor adds special tokens; decoding maps ids to token strings and runs the decoder.
// Each stage is a small class chosen by the JSON "type", so new tokenizer families add types.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::tokenizer {

class Tokenizer {
 public:
  // path: a tokenizer.json file, a SentencePiece tokenizer.model file, or a folder that
  // contains either (tokenizer.json preferred).
  // Throws tandem::Error (from "base/error.h") naming the file and field on any problem.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& path);
  // `source_name` is what error messages call the text (usually its file name). Only
  // tandem::Error ever escapes, whatever the bytes.
  // A SentencePiece model from the bytes of a serialized ModelProto (what a
  // tokenizer.model file holds).
  static std::unique_ptr<Tokenizer> from_sentencepiece(std::string_view serialized, const std::string& source_name);
  static std::unique_ptr<Tokenizer> from_json(std::string_view json_text,
                                              const std::string& source_name);

  // Thread-safe. Text need not be valid UTF-8: invalid bytes are encoded as bytes, never fail.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  // Throws tandem::Error for an id outside [0, vocab_size()). Ids in range without a token are
  // skipped, as Hugging Face does.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = true) const;

  int32_t vocab_size() const;  // max id + 1 over vocab and added tokens
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Incremental detokenizer for streaming: push() returns the text that is final so far; it never
// emits half a UTF-8 character; concatenation of all push() results + flush() == decode(all ids).
// Hugging Face's DecodeStream algorithm: decode a short window of recent ids and emit what
// extends the previously decoded prefix once it no longer ends in U+FFFD (a partial character).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special_tokens = true);
  std::string push(int32_t id);
  // Emits whatever is still held back (a trailing partial character becomes U+FFFD, as in
  // decode) and resets the decoder for a new stream.
  std::string flush();

 private:
  const Tokenizer* tok_;
  bool skip_special_tokens_;
  std::vector<int32_t> ids_;  // the window: ids of the previous emission, then pending ids
  std::string prefix_;        // decode of the previous emission's ids
  size_t prefix_index_ = 0;   // where the pending ids start in ids_
};

}  // namespace tandem::tokenizer
