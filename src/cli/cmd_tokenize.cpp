// tandem tokenize / detokenize: the model's tokenizer on its own, for checking prompts and
// comparing ids with other implementations.
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "base/error.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "engine/model_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tandem::cli {
namespace {

struct TokenizeArgs {
  std::string tokenizer;
  std::optional<std::string> text;
  std::optional<std::string> text_file;
  bool add_special = false;
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the text file");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed");
  return s.str();
}

void write_stdout(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

Runner add_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* c = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array");
  c->add_option("--tokenizer", a->tokenizer,
                "tokenizer.json, tokenizer.model, or a model folder")->required();
  // The text is taken verbatim (no escape expansion) so ids match other tokenizers exactly.
  auto* t = c->add_option("--text", a->text, "Text to tokenize, verbatim");
  auto* f = c->add_option("--text-file", a->text_file, "File whose bytes are the text");
  t->excludes(f);
  c->add_flag("--add-special", a->add_special, "Add special tokens (e.g. BOS) as the model does");
  return [a, t, f] {
    if (t->count() == 0 && f->count() == 0) throw Error("tokenize: give --text or --text-file");
    const std::string text = a->text ? *a->text : read_text_file(*a->text_file);
    const auto tok = engine::load_model_tokenizer(a->tokenizer);
    write_stdout("[" + join_ints(tok->encode(text, a->add_special), ", ") + "]\n");
    return 0;
  };
}

Runner add_detokenize(CLI::App& app) {
  auto tokenizer = std::make_shared<std::string>();
  auto ids = std::make_shared<std::string>();
  auto skip_special = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("detokenize", "Print the text of comma-separated token ids");
  c->add_option("--tokenizer", *tokenizer,
                "tokenizer.json, tokenizer.model, or a model folder")->required();
  c->add_option("--ids", *ids, "Token ids, e.g. 1,2,3")->required();
  c->add_flag("--skip-special", *skip_special, "Leave special tokens out of the text");
  return [tokenizer, ids, skip_special] {
    // Parse first: a typo in the ids should not wait for a large tokenizer to load.
    const auto list = parse_id_list(*ids, "--ids");
    const auto tok = engine::load_model_tokenizer(*tokenizer);
    // Exactly the decoded text, no newline added, so output round-trips through tokenize.
    write_stdout(tok->decode(list, *skip_special));
    return 0;
  };
}

}  // namespace tandem::cli
