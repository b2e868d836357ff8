// tandem quantize: a Hugging Face model folder -> a llama.cpp GGUF file of one weight type
// (models/gguf_export.h holds the mixing recipe).
#include <chrono>
#include <cstdio>
#include <string>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "models/gguf_export.h"

namespace tandem::cli {
namespace {

struct QuantizeArgs {
  std::string model, type = "f16", out, name;
  int threads = 0;
};

int run(const QuantizeArgs& a) {
  const auto type = models::parse_export_type(a.type);
  if (!type) throw Error("--type '" + a.type + "' is not one of " + models::export_type_list());
  if (std::filesystem::path(a.out).extension() != ".gguf") throw Error("--out '" + a.out + "' must end in .gguf");
  models::ExportOptions o;
  o.type = *type;
  o.name = a.name;
  o.threads = a.threads;
  const auto t0 = std::chrono::steady_clock::now();
  const models::ExportReport r = models::export_gguf(a.model, a.out, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote:        %s\n", a.out.c_str());
  std::printf("architecture: %s\n", r.architecture.c_str());
  std::printf("type:         %s\n", models::export_type_name(*type).c_str());
  std::printf("parameters:   %lld (%.2f M)\n", static_cast<long long>(r.params), static_cast<double>(r.params) / 1e6);
  std::printf("tensors:     ");
  for (const auto& [t, n] : r.type_counts) std::printf(" %s %d", t.c_str(), n);
  std::printf("\n");
  std::printf("vocabulary:   %s\n", r.has_vocab ? r.vocab_note.c_str() : ("none (" + r.vocab_note + ")").c_str());
  std::printf("file size:    %s (%llu bytes)\n", format_bytes(r.file_bytes).c_str(),
              static_cast<unsigned long long>(r.file_bytes));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f s", secs);
  log::info("quantize: done in " + std::string(buf));
  return 0;
}

}  // namespace

Runner add_quantize(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* c = app.add_subcommand("quantize", "Convert a Hugging Face model folder to a GGUF file (f32 ... q4_k)");
  c->add_option("--model,-m", a->model, "Hugging Face model folder")->required();
  c->add_option("--type", a->type, "Weight type: " + models::export_type_list() + " (default f16)");
  c->add_option("--out,-o", a->out, "Output .gguf file")->required();
  c->add_option("--name", a->name, "general.name (default: the folder's name)");
  c->add_option("--threads,-t", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  return [a] { return run(*a); };
}

}  // namespace tandem::cli
