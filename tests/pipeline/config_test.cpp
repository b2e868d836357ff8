// parse_config: the example config parses; each kind of mistake is reported with the file,
// the line and the field path.
#include "pipeline/config.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace tandem::pipeline {
namespace {

TEST(Config, ExampleParses) {
  const auto file = testing::source_dir() / "examples" / "tandem.yaml";
  ServeConfig c = parse_config(file);
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].name, "demo");
  EXPECT_EQ(std::filesystem::weakly_canonical(c.models[0].path),
            std::filesystem::weakly_canonical(testing::source_dir() / "models" / "demo"));
  EXPECT_EQ(c.models[0].max_context, 1024);
  ASSERT_GE(c.pipelines.size(), 3u);
  const PipelineConfig* s = c.find_pipeline("summarize");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->cls, PipelineClass::kBatch);
  ASSERT_EQ(s->steps.size(), 1u);
  EXPECT_EQ(s->steps[0].kind, StepKind::kMapReduce);
  EXPECT_EQ(s->steps[0].input, "document");
  EXPECT_EQ(s->steps[0].chunk_tokens, 512);
  const PipelineConfig* k = c.find_pipeline("classify");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->steps[0].labels.size(), 4u);
  EXPECT_DOUBLE_EQ(k->min_share, 0.2);
  const PipelineConfig* e = c.find_pipeline("extract");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->steps[0].schema["properties"]["count"]["type"], "integer");
  EXPECT_EQ(c.find_pipeline("nope"), nullptr);
  EXPECT_NE(c.find_model("demo"), nullptr);
  EXPECT_EQ(c.server.port, 8000);
  EXPECT_EQ(c.resources.mode, ShareMode::kAdaptive);
}

TEST(Config, Defaults) {
  ServeConfig c = parse_config_text(R"(
models:
  - {name: m, path: /models/m, placement: {gpu_layers: 4}}
  - {name: b, path: /models/b, bf16_activations: true}
pipelines:
  - name: p
    model: m
    steps:
      - {type: generate, prompt: "{{ input }}", stop: ["\n"], temperature: 0.5, seed: 3}
)");
  EXPECT_FALSE(c.models[0].bf16_activations.has_value());
  EXPECT_EQ(c.models[1].bf16_activations, std::optional<bool>(true));
  EXPECT_EQ(c.models[0].placement, Placement::kLayers);
  EXPECT_EQ(c.models[0].gpu_layers, 4);
  const auto& p = c.pipelines[0];
  EXPECT_EQ(p.cls, PipelineClass::kInteractive);
  EXPECT_DOUBLE_EQ(p.weight, 1.0);
  EXPECT_EQ(p.steps[0].name, "generate");
  EXPECT_EQ(p.steps[0].stop, std::vector<std::string>{"\n"});
  EXPECT_FLOAT_EQ(p.steps[0].sampling.temperature, 0.5f);
  EXPECT_EQ(p.steps[0].sampling.seed, 3u);
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.resources.max_batch_tokens, 256);
}

struct Bad {
  const char* name;
  const char* yaml;
  int line;
  const char* path;
  const char* message;  // a part of it
};

constexpr const char* kModels = "models:\n  - {name: demo, path: /m}\n";  // lines 1-2

class ConfigErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(ConfigErrors, NamesLineAndField) {
  const Bad& b = GetParam();
  const std::string text = std::string(kModels) + b.yaml;
  try {
    parse_config_text(text, "tandem.yaml");
    FAIL() << b.name << ": parsed";
  } catch (const ConfigError& e) {
    const std::string want = "tandem.yaml:" + std::to_string(b.line) + ": " + b.path + ": ";
    const std::string got = e.what();
    EXPECT_EQ(got.rfind(want, 0), 0u) << b.name << ": " << got;
    EXPECT_NE(got.find(b.message), std::string::npos) << b.name << ": " << got;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Config, ConfigErrors,
    ::testing::Values(Bad{"negative_weight",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps: [{type: generate}]\n"
                          "  - name: b\n"
                          "    model: demo\n"
                          "    weight: -2\n"
                          "    steps: [{type: generate}]\n",
                          9, "pipelines[1].weight", "must be > 0 (got -2)"},
                      Bad{"unknown_key",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    wieght: 2\n"
                          "    steps: [{type: generate}]\n",
                          6, "pipelines[0].wieght", "did you mean 'weight'"},
                      Bad{"unknown_model",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: nope\n"
                          "    steps: [{type: generate}]\n",
                          5, "pipelines[0].model", "unknown model 'nope'"},
                      Bad{"no_steps",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps: []\n",
                          6, "pipelines[0].steps", "at least one step"},
                      Bad{"duplicate_pipeline",
                          "pipelines:\n"
                          "  - {name: a, model: demo, steps: [{type: generate}]}\n"
                          "  - {name: a, model: demo, steps: [{type: generate}]}\n",
                          5, "pipelines[1].name", "duplicate pipeline name"},
                      Bad{"min_share_sum",
                          "pipelines:\n"
                          "  - {name: a, model: demo, min_share: 0.6, steps: [{type: generate}]}\n"
                          "  - {name: b, model: demo, min_share: 0.5, steps: [{type: generate}]}\n",
                          5, "pipelines[1].min_share", "must be <= 1"},
                      Bad{"max_below_min",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    min_share: 0.5\n"
                          "    max_share: 0.25\n"
                          "    steps: [{type: generate}]\n",
                          7, "pipelines[0].max_share", "must be >= min_share"},
                      Bad{"bad_template",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps:\n"
                          "      - type: generate\n"
                          "        prompt: \"{{ input \"\n",
                          8, "pipelines[0].steps[0].prompt", "template does not parse"},
                      Bad{"one_label",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps:\n"
                          "      - type: classify\n"
                          "        prompt: \"{{ input }}\"\n"
                          "        labels: [yes]\n",
                          9, "pipelines[0].steps[0].labels", "at least 2 labels"},
                      Bad{"duplicate_label",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps:\n"
                          "      - type: classify\n"
                          "        prompt: \"{{ input }}\"\n"
                          "        labels:\n"
                          "          - yes\n"
                          "          - no\n"
                          "          - yes\n",
                          12, "pipelines[0].steps[0].labels[2]", "duplicate label 'yes'"},
                      Bad{"schema_pattern",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps:\n"
                          "      - type: extract\n"
                          "        prompt: \"{{ input }}\"\n"
                          "        schema:\n"
                          "          type: object\n"
                          "          properties:\n"
                          "            name:\n"
                          "              type: string\n"
                          "              pattern: \"^a\"\n",
                          14, "pipelines[0].steps[0].schema.properties.name.pattern",
                          "unsupported keyword 'pattern'"},
                      Bad{"schema_anyof",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps:\n"
                          "      - type: extract\n"
                          "        prompt: \"{{ input }}\"\n"
                          "        schema:\n"
                          "          type: object\n"
                          "          properties:\n"
                          "            v: {anyOf: [{type: string}, {type: integer}]}\n",
                          12, "pipelines[0].steps[0].schema.properties.v.anyOf",
                          "unsupported keyword 'anyOf'"},
                      Bad{"extract_budget",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps:\n"
                          "      - type: extract\n"
                          "        prompt: \"{{ input }}\"\n"
                          "        max_tokens: 8\n"
                          "        schema: {type: object, properties: {name: {type: string}}}\n",
                          9, "pipelines[0].steps[0].max_tokens", "must be at least 11"},
                      Bad{"negative_temperature",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps:\n"
                          "      - type: generate\n"
                          "        temperature: -1\n",
                          8, "pipelines[0].steps[0].temperature", "must be in 0..100 (got -1)"},
                      Bad{"bad_class",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    class: urgent\n"
                          "    steps: [{type: generate}]\n",
                          6, "pipelines[0].class", "must be one of interactive, batch"},
                      Bad{"bad_number",
                          "resources:\n"
                          "  max_batch_tokens: lots\n",
                          4, "resources.max_batch_tokens", "expected an integer"},
                      Bad{"unknown_top_level",
                          "pipeline:\n"
                          "  - {name: a}\n",
                          3, "pipeline", "did you mean 'pipelines'"},
                      Bad{"unknown_step_key",
                          "pipelines:\n"
                          "  - name: a\n"
                          "    model: demo\n"
                          "    steps:\n"
                          "      - type: generate\n"
                          "        labels: [a, b]\n",
                          8, "pipelines[0].steps[0].labels", "unknown key 'labels'"}),
    [](const ::testing::TestParamInfo<Bad>& i) { return std::string(i.param.name); });

TEST(Config, MissingFileAndBadYaml) {
  EXPECT_THROW(parse_config("/nonexistent/tandem.yaml"), ConfigError);
  try {
    parse_config_text("models: [\n", "x.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("x.yaml:", 0), 0u) << e.what();
  }
}

// Found by fuzz_config: a byte that is not UTF-8 in a schema's enum reached the JSON writer,
// which threw a nlohmann exception instead of a ConfigError.
TEST(Config, InvalidUtf8IsAConfigErrorNamingTheLine) {
  const std::string text =
      "models: [{name: m, path: /x}]\n"
      "pipelines:\n"
      "  - name: p\n"
      "    model: m\n"
      "    steps:\n"
      "      - name: s\n"
      "        type: extract\n"
      "        prompt: x\n"
      "        schema: {type: object, properties: {a: {enum: [\"ab\x96\"]}}}\n";
  try {
    parse_config_text(text, "u.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("u.yaml:9:", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tandem::pipeline
