// Chat templates: a Jinja subset interpreter that renders a conversation to a prompt string
// exactly as Hugging Face transformers does (jinja2 with trim_blocks and lstrip_blocks, the
// raise_exception/strftime_now globals and a json.dumps-like tojson filter). It covers what
// the Llama 3, Qwen 3 and Gemma 3 templates use; anything else is refused at parse time with
// the construct and its line named, so a template never renders silently wrong.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::tokenizer {

namespace chat_template_detail {
struct Program;
}

struct ChatRenderInput {
  // ordered_json keeps the key order of the request, as Python dicts do: tojson of a
  // tool schema must list properties in the order the client sent them.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{role, content, ...}]
  nlohmann::ordered_json tools;                                       // null when absent
  bool add_generation_prompt = false;
  // An empty token is left undefined in the template, as transformers leaves out special
  // tokens that are None or empty.
  std::string bos_token, eos_token;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // other template variables, e.g. enable_thinking
};

class ChatTemplate {
 public:
  // Parses a template. Throws tandem::Error ("base/error.h") naming the unsupported construct and its line.
  static ChatTemplate parse(std::string_view source);
  // Renders. raise_exception(msg) in the template and runtime errors throw tandem::Error with the message.
  // Thread-safe: the parsed tree is immutable.
  std::string render(const ChatRenderInput& in) const;
  // The variables the template reads without setting them itself (as jinja2's
  // meta.find_undeclared_variables), sorted by name; `printed` when some {{ name }} outputs one
  // as is. Lets a caller check its inputs before rendering, since an undefined variable
  // renders as ''.
  struct Variable {
    std::string name;
    bool printed = false;
  };
  std::vector<Variable> free_variables() const;
  // From a model folder: tokenizer_config.json's "chat_template" (a string, or a list of
  // {"name","template"}: pick `name`, default "default"), or a chat_template.jinja file beside it.
  // Also fills bos/eos from tokenizer_config.json (string or {"content": ...}) when out-params given.
  static ChatTemplate from_model_dir(const std::filesystem::path& dir, const std::string& name = "default",
                                     std::string* bos_token = nullptr, std::string* eos_token = nullptr);

 private:
  explicit ChatTemplate(std::shared_ptr<const chat_template_detail::Program> program)
      : program_(std::move(program)) {}
  std::shared_ptr<const chat_template_detail::Program> program_;
};

}  // namespace tandem::tokenizer
