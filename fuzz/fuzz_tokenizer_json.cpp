// libFuzzer target for the tokenizer.json loader: any bytes must either load or throw
// tandem::Error; a loaded tokenizer must encode, decode and stream without crashing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tandem::tokenizer::StreamDecoder;
  using tandem::tokenizer::Tokenizer;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto tok = Tokenizer::from_json(text, "fuzz.json");
    // Mixed ASCII, multi-byte, invalid UTF-8 and special-token-looking text.
    const std::string sample = "Hi <s> there\t\xC3\xA9\xE4\xBD\xA0 \xF0\x9F\x98\x80 12345 \xFF!";
    for (bool add_special : {false, true}) {
      const auto ids = tok->encode(sample, add_special);
      (void)tok->decode(ids, true);
      (void)tok->decode(ids, false);
      StreamDecoder stream(*tok);
      for (int32_t id : ids) (void)stream.push(id);
      (void)stream.flush();
    }
    for (int32_t id = 0; id < tok->vocab_size() && id < 64; ++id) {
      (void)tok->id_to_token(id);
      (void)tok->is_special(id);
    }
  } catch (const tandem::Error&) {
    // Rejected input or an unusable configuration (e.g. a missing unk token): both fine.
  }
  return 0;
}
