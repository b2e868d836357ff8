// What the server holds per model and per pipeline; shared by its route files.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "models/model.h"
#include "pipeline/config.h"
#include "pipeline/pipeline.h"
#include "server/openai_request.h"
#include "server/server.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tandem::server {

struct Server::Served {
  std::string name;
  int32_t tenant = 0;  // the model's own requests
  std::unique_ptr<models::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  std::optional<tokenizer::ChatTemplate> chat;
  std::string bos, eos;
  std::unique_ptr<engine::Engine> engine;  // declared last: stops before the model goes
  int64_t created = 0;
};

struct Server::ServedPipeline {
  std::string name;
  Served* model = nullptr;
  pipeline::PipelineConfig cfg;
  std::unique_ptr<pipeline::Pipeline> pipe;
};

// A completion request as pipeline input: {"input": prompt}, or for a chat {"messages": [...],
// "input": the last user message}.
nlohmann::ordered_json pipeline_input(const CompletionRequest& r, bool chat);

}  // namespace tandem::server
