// Public entry points: parse, render with transformers' variables, and load from a model folder.
#include "tokenizer/chat_template.h"

#include <fstream>
#include <sstream>

#include "tokenizer/chat_template_ast.h"

namespace tandem::tokenizer {

using chat_template_detail::Value;

ChatTemplate ChatTemplate::parse(std::string_view source) {
  return ChatTemplate(std::make_shared<const chat_template_detail::Program>(chat_template_detail::parse_program(source)));
}

std::string ChatTemplate::render(const ChatRenderInput& in) const {
  // transformers passes messages, tools, documents and add_generation_prompt, then the special
  // tokens that are set, then the caller's extra keyword arguments.
  std::map<std::string, Value> vars;
  vars["messages"] = Value::of(in.messages);
  vars["tools"] = Value::of(in.tools);
  vars["documents"] = Value::of(nullptr);
  vars["add_generation_prompt"] = Value::of(in.add_generation_prompt);
  if (!in.bos_token.empty()) vars["bos_token"] = Value::of(in.bos_token);
  if (!in.eos_token.empty()) vars["eos_token"] = Value::of(in.eos_token);
  if (in.extra.is_object()) {
    for (const auto& [k, v] : in.extra.items()) vars[k] = Value::of(v);
  }
  try {
    return chat_template_detail::render_program(*program_, std::move(vars));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // e.g. nlohmann or allocation failures: still a tandem::Error
    throw Error(std::string("chat template: render failed: ") + e.what());
  }
}

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("cannot read " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string token_text(const nlohmann::json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return {};
}

}  // namespace

ChatTemplate ChatTemplate::from_model_dir(const std::filesystem::path& dir, const std::string& name, std::string* bos_token,
                                          std::string* eos_token) {
  nlohmann::json cfg = nlohmann::json::object();
  const auto cfg_path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(cfg_path)) {
    try {
      cfg = nlohmann::json::parse(read_file(cfg_path));
    } catch (const nlohmann::json::exception& e) {
      throw Error(cfg_path.string() + ": invalid JSON: " + e.what());
    }
    if (!cfg.is_object()) throw Error(cfg_path.string() + ": expected a JSON object");
  }
  if (bos_token) *bos_token = token_text(cfg, "bos_token");
  if (eos_token) *eos_token = token_text(cfg, "eos_token");
  auto parse_named = [&](const std::string& source, const std::string& where) {
    try {
      return parse(source);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  };
  if (auto it = cfg.find("chat_template"); it != cfg.end() && !it->is_null()) {
    if (it->is_string()) return parse_named(it->get<std::string>(), cfg_path.string());
    if (it->is_array()) {
      for (const auto& entry : *it) {
        if (entry.is_object() && entry.value("name", "") == name && entry.contains("template") && entry["template"].is_string()) {
          return parse_named(entry["template"].get<std::string>(), cfg_path.string() + " (template '" + name + "')");
        }
      }
      throw Error(cfg_path.string() + ": no chat template named '" + name + "'");
    }
    throw Error(cfg_path.string() + ": \"chat_template\" must be a string or a list");
  }
  const auto jinja = dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja)) return parse_named(read_file(jinja), jinja.string());
  throw Error(dir.string() + ": no chat template (neither tokenizer_config.json \"chat_template\" nor chat_template.jinja)");
}

}  // namespace tandem::tokenizer
