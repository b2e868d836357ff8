// A pipeline: named steps over one model's engine, run for one request at a
// time on the caller's thread (an HTTP worker). Steps submit engine requests
// tagged with the pipeline's tenant id, so the resource manager accounts and
// orders them per pipeline; map_reduce submits its chunks concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/engine.h"
#include "pipeline/config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tandem::pipeline {

// Bad request input: status 400 (missing or wrongly typed field; `field` names it) or 413
// (over the pipeline's max_input_tokens; the message has both numbers).
class InputError : public Error {
 public:
  InputError(int status, std::string field, std::string message)
      : Error(std::move(message)), status_(status), field_(std::move(field)) {}
  int status() const { return status_; }
  const std::string& field() const { return field_; }

 private:
  int status_;
  std::string field_;
};

// What a pipeline runs on: a served model.
struct ModelHandle {
  engine::Engine* engine = nullptr;
  const tokenizer::Tokenizer* tok = nullptr;
  const tokenizer::ChatTemplate* chat = nullptr;  // null: the model has none
  std::string bos_token, eos_token;               // for the chat template
  int64_t max_context = 0;
};

struct RunResult {
  // generate: {"text": "..."}; map_reduce: {"text": "...", "chunks": N, "reduce_rounds": R};
  // classify: {"label": "...", "probabilities": {"label": p, ...}}; extract: {"json": {...}}.
  // Always the last step's output. Later templates see a step's output under its name as
  // the text (generate, map_reduce), the label (classify) or the JSON value (extract).
  nlohmann::json output;
  nlohmann::json steps = nlohmann::json::object();  // every step's output by step name
  std::string finish_reason = "stop";                // of the last engine request
  int64_t prompt_tokens = 0;                         // over all engine requests
  int64_t completion_tokens = 0;
};

class Pipeline {
 public:
  // Throws ConfigError when a step cannot be built for this model (e.g. a label or schema
  // the tokenizer cannot express, a template that does not parse).
  Pipeline(PipelineConfig cfg, ModelHandle model, int32_t tenant);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  const PipelineConfig& config() const { return cfg_; }
  int32_t tenant() const { return tenant_; }
  const ModelHandle& model() const { return model_; }

  // `input` is a JSON object of input fields; a chat arrives as {"messages": [...]} and a
  // completion prompt as {"input": "..."}. Throws InputError for bad input,
  // engine::Overloaded when the engine refuses, tandem::Error when a step fails. Returns
  // early with finish_reason "cancelled" once *cancelled becomes true.
  RunResult run(const nlohmann::json& input, const std::atomic<bool>* cancelled = nullptr);

  // For a pipeline that is a single generate step: the engine request for this input,
  // ready to submit (tenant set), so the OpenAI routes can stream it. nullopt otherwise.
  std::optional<engine::RequestOptions> single_request(const nlohmann::json& input) const;

 private:
  struct Impl;
  PipelineConfig cfg_;
  ModelHandle model_;
  int32_t tenant_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::pipeline
