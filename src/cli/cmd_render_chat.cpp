// tandem render-chat: a conversation rendered with the model's chat template, exactly the
// prompt the model would be given (for checking templates against transformers).
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "base/error.h"
#include "cli/commands.h"
#include "engine/model_tokenizer.h"
#include "tokenizer/chat_template.h"

namespace tandem::cli {

tokenizer::ChatTemplate load_chat_template(const std::string& model, std::string* bos_token,
                                           std::string* eos_token) {
  // Checked here so a model without a template gets a plain answer, not a parser's complaint.
  auto tpl = engine::load_model_chat_template(model, bos_token, eos_token);
  if (!tpl) {
    throw Error(model +
                ": the model has no chat template (no \"chat_template\" in tokenizer_config.json, no "
                "chat_template.jinja, no tokenizer.chat_template in a GGUF file)");
  }
  return std::move(*tpl);
}

namespace {

struct RenderArgs {
  std::string model;
  std::string messages_file;
  bool add_generation_prompt = false;
};

int render(const RenderArgs& a) {
  std::ifstream in(a.messages_file, std::ios::binary);
  if (!in) throw Error(a.messages_file + ": cannot open the messages file");
  std::ostringstream text;
  text << in.rdbuf();
  const auto doc = nlohmann::ordered_json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw Error(a.messages_file + ": not valid JSON");

  tokenizer::ChatRenderInput input;
  if (doc.is_array()) {
    input.messages = doc;
  } else if (doc.is_object() && doc.contains("messages") && doc["messages"].is_array()) {
    // Other keys (e.g. enable_thinking) become template variables, as apply_chat_template's
    // keyword arguments do.
    for (const auto& [key, value] : doc.items()) {
      if (key == "messages") {
        input.messages = value;
      } else if (key == "tools") {
        input.tools = value;
      } else {
        input.extra[key] = value;
      }
    }
  } else {
    throw Error(a.messages_file + ": expected a JSON array of messages or an object with \"messages\"");
  }
  input.add_generation_prompt = a.add_generation_prompt;
  const auto tpl = load_chat_template(a.model, &input.bos_token, &input.eos_token);
  const std::string prompt = tpl.render(input);
  // Exactly the prompt: no newline added, since a trailing newline would change its tokens.
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

Runner add_render_chat(CLI::App& app) {
  auto a = std::make_shared<RenderArgs>();
  CLI::App* c = app.add_subcommand("render-chat", "Print a conversation rendered with the model's chat template");
  c->add_option("--model,-m", a->model, "Hugging Face model folder")->required();
  c->add_option("--messages", a->messages_file,
                "JSON file: an array of messages, or {\"messages\": [...], \"tools\": [...]}")->required();
  c->add_flag("--add-generation-prompt", a->add_generation_prompt, "End with the assistant turn's opening");
  return [a] { return render(*a); };
}

}  // namespace tandem::cli
