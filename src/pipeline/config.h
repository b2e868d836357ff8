// The serving configuration (`tandem serve --config tandem.yaml`): the models
// to load, the pipelines built on them and how the resource manager shares the
// machine among them. parse_config() checks everything a running server would
// otherwise discover late: unknown keys, wrong types, out-of-range numbers,
// pipelines naming unknown models, templates that do not parse, JSON schemas
// the decoder cannot enforce. Each error names the file, line and field path,
// e.g. "tandem.yaml:14: pipelines[1].weight: must be > 0 (got -2)".
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "engine/sampler.h"

namespace tandem::pipeline {

class ConfigError : public Error {
 public:
  using Error::Error;
};

enum class Placement { kCpu, kGpu, kAuto, kLayers };

struct ModelConfig {
  std::string name;
  std::filesystem::path path;  // relative paths are relative to the config file's folder
  std::string quantize;        // "" (as stored), q8_0, q4_0, q5_0, q4_k, q6_k, f16, bf16, f32
  std::optional<bool> bf16_activations;  // models::LoadOptions::bf16_activations (unset: the format's default)
  Placement placement = Placement::kCpu;
  int gpu_layers = 0;          // with kLayers
  int64_t max_context = 0;     // 0: the model's own
  int line = 0;
};

enum class StepKind { kGenerate, kMapReduce, kClassify, kExtract };

struct StepConfig {
  std::string name;  // the step's output is available to later templates under this name
  StepKind kind = StepKind::kGenerate;
  // Templates use the chat-template Jinja subset; variables are the request's input fields
  // and earlier steps' outputs by name. With `chat: true` the rendered prompt becomes the
  // user message of the model's chat template (or `messages` is used as is when the input
  // is a chat).
  std::string prompt;  // generate, classify, extract
  bool chat = true;
  engine::SamplingParams sampling;
  int64_t max_tokens = 256;
  std::vector<std::string> stop;
  // map_reduce: `input` names the field to split (default "input"); each chunk renders
  // map_prompt with {{ chunk }}; reduce_prompt renders with {{ summaries }} (joined map
  // outputs) and is applied hierarchically until one output remains.
  std::string input = "input";
  std::string map_prompt, reduce_prompt;
  int64_t chunk_tokens = 0;   // 0: derived from the model's context
  int64_t overlap_tokens = 64;
  // classify
  std::vector<std::string> labels;
  // extract: a JSON schema (subset enforced by constrained decoding; checked at parse time)
  nlohmann::json schema;
  // The same with the properties in declared order, which the output follows (null: schema's).
  nlohmann::ordered_json ordered_schema;
  int line = 0;
};

enum class PipelineClass { kInteractive, kBatch };

struct PipelineConfig {
  std::string name;
  std::string model;
  std::vector<StepConfig> steps;
  PipelineClass cls = PipelineClass::kInteractive;
  double weight = 1.0;
  double min_share = 0.0;  // 0..1 of each device's capacity, honored under contention
  double max_share = 1.0;
  double ttft_ms = 0;  // SLO targets; 0: none
  double tpot_ms = 0;
  int64_t max_queue = 64;           // requests waiting beyond this get 429
  int64_t max_input_tokens = 0;     // 0: the model's context (map_reduce: unlimited unless set)
  int line = 0;
};

enum class ShareMode { kAdaptive, kStatic };

struct ResourceConfig {
  ShareMode mode = ShareMode::kAdaptive;
  double control_period_ms = 100;  // how often KV quotas move toward demand
  double window_s = 10;            // the window shares and percentiles are measured over
  int threads = 0;                 // CPU threads; 0: all cores
  int64_t kv_blocks = 0;           // CPU KV pool in blocks; 0: default per model
  int64_t max_batch_tokens = 256;
  int64_t max_running = 64;
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
};

struct ServeConfig {
  std::filesystem::path file;
  std::vector<ModelConfig> models;
  std::vector<PipelineConfig> pipelines;
  ResourceConfig resources;
  ServerConfig server;

  const ModelConfig* find_model(std::string_view name) const;
  const PipelineConfig* find_pipeline(std::string_view name) const;
};

// Throws ConfigError ("FILE:LINE: field.path: what is wrong").
ServeConfig parse_config(const std::filesystem::path& file);
ServeConfig parse_config_text(std::string_view yaml, const std::string& file_name = "config");

}  // namespace tandem::pipeline
