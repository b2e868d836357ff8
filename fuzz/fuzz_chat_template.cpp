// libFuzzer target: any bytes as a chat template, rendered against a small fixed conversation.
// Only tandem::Error may escape parse or render; anything else (or a crash) is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tandem::tokenizer::ChatRenderInput* input = [] {
    auto* in = new tandem::tokenizer::ChatRenderInput();
    in->messages = nlohmann::json::parse(R"([
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi <b>é</b>"},
      {"role": "assistant", "content": "<think>\nok\n</think>\n\nHello", "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]},
      {"role": "tool", "content": "42"}])");
    in->tools = nlohmann::json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])");
    in->add_generation_prompt = true;
    in->bos_token = "<s>";
    in->eos_token = "</s>";
    in->extra = {{"enable_thinking", false}};
    return in;
  }();
  try {
    auto tmpl = tandem::tokenizer::ChatTemplate::parse(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)tmpl.render(*input);
  } catch (const tandem::Error&) {
  }
  return 0;
}
