// Pipelines on the demo model through a real engine: extract always yields JSON that
// validates, classify's probabilities match a direct forward pass, map_reduce handles an
// input 20 times the context, and bad input is a 400 or 413 naming the field.
#include "pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "engine/model_tokenizer.h"
#include "models/logits_util.h"
#include "pipeline/json_schema.h"
#include "test_util.h"

namespace tandem::pipeline {
namespace {

using nlohmann::json;

struct Demo {
  std::unique_ptr<models::Model> model =
      models::Model::load(testing::source_dir() / "models" / "demo");
  std::unique_ptr<tokenizer::Tokenizer> tok =
      engine::load_model_tokenizer(testing::source_dir() / "models" / "demo");
  ThreadPool pool{2};
  std::unique_ptr<engine::Engine> engine =
      std::make_unique<engine::Engine>(*model, tok.get(), engine::EngineOptions{}, pool);
  ModelHandle handle() {
    ModelHandle h;
    h.engine = engine.get();
    h.tok = tok.get();
    h.max_context = engine->max_context();
    return h;
  }
};

Demo& demo() {
  static Demo d;
  return d;
}

PipelineConfig pipeline_from(const std::string& steps_yaml, const std::string& extra = "") {
  const std::string text =
      "models:\n  - {name: demo, path: /m}\npipelines:\n  - name: p\n    model: demo\n" + extra +
      "    steps:\n" + steps_yaml;
  return parse_config_text(text, "test.yaml").pipelines.at(0);
}

TEST(Pipeline, ExtractAlwaysValidates) {
  PipelineConfig cfg = pipeline_from(
      "      - name: fields\n"
      "        type: extract\n"
      "        chat: false\n"
      "        prompt: \"# {{ input }}\\nparams = \"\n"
      "        max_tokens: 64\n"
      "        schema:\n"
      "          type: object\n"
      "          properties:\n"
      "            name: {type: string, maxLength: 8}\n"
      "            n: {type: integer}\n"
      "            ok: {type: boolean}\n"
      "            kind: {enum: [int, str]}\n"
      "            xs: {type: array, items: {type: number}, maxItems: 2}\n"
      "          required: [name, n]\n");
  Pipeline p(cfg, demo().handle(), 1);
  const json schema = cfg.steps[0].schema;
  const char* topics[] = {"Return the shape of the array",
                          "Load a file from disk",
                          "Parse the config string",
                          "Compute the mean of values",
                          "Open a socket",
                          "Sort the list in place",
                          "Convert the tensor to float",
                          "Split the text into words",
                          "Read the image",
                          "Count items"};
  constexpr int kRuns = 100;
  std::vector<json> outs(kRuns);
  std::vector<std::string> errors(kRuns);
  std::vector<std::thread> threads;
  for (int t = 0; t < 10; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kRuns; i += 10) {
        try {
          outs[static_cast<size_t>(i)] =
              p.run(json{{"input", std::string(topics[i % 10]) + " #" + std::to_string(i)}}).output;
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(i)] = e.what();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < kRuns; ++i) {
    ASSERT_EQ(errors[static_cast<size_t>(i)], "") << i;
    const json& o = outs[static_cast<size_t>(i)];
    ASSERT_TRUE(o.contains("json")) << o.dump();
    std::string why;
    EXPECT_TRUE(validate(o["json"], schema, &why)) << o.dump() << ": " << why;
  }
}

TEST(Pipeline, ClassifyMatchesDirectComputation) {
  PipelineConfig cfg = pipeline_from(
      "      - name: kind\n"
      "        type: classify\n"
      "        chat: false\n"
      "        prompt: \"def f(x):\\n    \\\"\\\"\\\"{{ input }}\\\"\\\"\\\"\\n    # about\"\n"
      "        labels: [arrays, strings, files]\n");
  Pipeline p(cfg, demo().handle(), 1);
  const std::string input = "Return the shape of the numpy array.";
  RunResult r = p.run(json{{"input", input}});
  const auto& labels = cfg.steps[0].labels;
  ASSERT_TRUE(r.output.contains("label")) << r.output.dump();
  const std::string label = r.output["label"];
  EXPECT_NE(std::find(labels.begin(), labels.end(), label), labels.end());
  double sum = 0;
  for (const auto& l : labels) sum += r.output["probabilities"][l].get<double>();
  EXPECT_NEAR(sum, 1.0, 1e-6);

  // Directly: the log-likelihood of each label's tokens after the prompt, then a softmax.
  const std::string prompt_text = "def f(x):\n    \"\"\"" + input + "\"\"\"\n    # about";
  const auto prompt = demo().tok->encode(prompt_text, true);
  std::vector<double> ll;
  for (const auto& l : labels) {
    auto ids = prompt;
    const auto lids = demo().tok->encode(l, false);
    ids.insert(ids.end(), lids.begin(), lids.end());
    const auto logits = testing::logits_all(*demo().model, ids, demo().pool);
    const auto V = static_cast<size_t>(demo().model->vocab_size());
    double s = 0;
    for (size_t i = prompt.size(); i < ids.size(); ++i) {
      const float* row = logits.data() + (i - 1) * V;
      double mx = row[0];
      for (size_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      double z = 0;
      for (size_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      s += row[static_cast<size_t>(ids[i])] - mx - std::log(z);
    }
    ll.push_back(s);
  }
  const double mx = *std::max_element(ll.begin(), ll.end());
  double z = 0;
  for (double v : ll) z += std::exp(v - mx);
  for (size_t i = 0; i < labels.size(); ++i) {
    EXPECT_NEAR(r.output["probabilities"][labels[i]].get<double>(), std::exp(ll[i] - mx) / z, 2e-3)
        << labels[i];
  }
  EXPECT_EQ(r.steps["kind"], r.output);
}

TEST(Pipeline, MapReduceTwentyContexts) {
  PipelineConfig cfg = pipeline_from(
      "      - name: summary\n"
      "        type: map_reduce\n"
      "        input: document\n"
      "        chat: false\n"
      "        map_prompt: \"# Summarize:\\n{{ chunk }}\\n# Summary:\"\n"
      "        reduce_prompt: \"# Combine:\\n{{ summaries }}\\n# Summary:\"\n"
      "        max_tokens: 8\n",
      "    class: batch\n");
  Pipeline p(cfg, demo().handle(), 2);
  const int64_t ctx = demo().engine->max_context();
  std::string doc;
  for (int i = 0; demo().tok->encode(doc, false).size() < static_cast<size_t>(20 * ctx); ++i) {
    for (int j = 0; j < 50; ++j) {
      doc += "def function_" + std::to_string(i * 50 + j) +
             "(x, y):\n    \"\"\"Return the sum of x and y as a " + (j % 2 ? "float" : "tensor") +
             " with shape " + std::to_string(j) + ".\"\"\"\n    return x + y\n\n";
    }
  }
  RunResult r = p.run(json{{"document", doc}});
  ASSERT_TRUE(r.output.contains("text"));
  EXPECT_GE(r.output["chunks"].get<int64_t>(), 20);
  EXPECT_GE(r.output["reduce_rounds"].get<int64_t>(), 1);
  EXPECT_GT(r.prompt_tokens, 20 * ctx);
  EXPECT_GT(r.completion_tokens, 0);
}

// A small context (the pipeline's view of the model) forces summaries into several reduce
// rounds.
TEST(Pipeline, MapReduceHierarchical) {
  PipelineConfig cfg = pipeline_from(
      "      - name: summary\n"
      "        type: map_reduce\n"
      "        chat: false\n"
      "        map_prompt: \"# Summarize:\\n{{ chunk }}\\n# Summary:\"\n"
      "        reduce_prompt: \"# Combine:\\n{{ summaries }}\\n# Summary:\"\n"
      "        overlap_tokens: 8\n"
      "        max_tokens: 8\n");
  ModelHandle h = demo().handle();
  h.max_context = 96;
  Pipeline p(cfg, h, 2);
  std::string doc;
  for (int i = 0; i < 60; ++i)
    doc += "def f" + std::to_string(i) + "(x):\n    return x * " + std::to_string(i) + "\n\n";
  RunResult r = p.run(json{{"input", doc}});
  EXPECT_GE(r.output["chunks"].get<int64_t>(), 8);
  EXPECT_GE(r.output["reduce_rounds"].get<int64_t>(), 2);
  EXPECT_TRUE(r.output["text"].is_string());
  EXPECT_EQ(r.steps["summary"], r.output);
}

// A pipeline whose engine queue share is smaller than its chunk count waits for its own
// requests to make room; with no room at all the engine's refusal propagates.
TEST(Pipeline, MapReduceThrottlesToTheQueueAndOverloadPropagates) {
  PipelineConfig cfg = pipeline_from(
      "      - name: summary\n"
      "        type: map_reduce\n"
      "        chat: false\n"
      "        map_prompt: \"# Summarize:\\n{{ chunk }}\\n# Summary:\"\n"
      "        reduce_prompt: \"# Combine:\\n{{ summaries }}\\n# Summary:\"\n"
      "        overlap_tokens: 8\n"
      "        max_tokens: 4\n");
  ModelHandle h = demo().handle();
  h.max_context = 96;
  std::string doc;
  for (int i = 0; i < 40; ++i)
    doc += "def f" + std::to_string(i) + "(x):\n    return x * " + std::to_string(i) + "\n\n";
  demo().engine->set_tenant_max_waiting(7, 2);
  Pipeline p(cfg, h, 7);
  RunResult r = p.run(json{{"input", doc}});
  EXPECT_GE(r.output["chunks"].get<int64_t>(), 5);
  demo().engine->set_tenant_max_waiting(8, 0);
  Pipeline q(cfg, h, 8);
  EXPECT_THROW(q.run(json{{"input", doc}}), engine::Overloaded);
}

TEST(Pipeline, MissingAndWrongFields) {
  PipelineConfig cfg = pipeline_from(
      "      - name: text\n"
      "        type: generate\n"
      "        chat: false\n"
      "        prompt: \"# {{ topic }}: {{ input }}\"\n"
      "        max_tokens: 4\n");
  Pipeline p(cfg, demo().handle(), 1);
  try {
    p.run(json{{"input", "x"}});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.field(), "topic");
    EXPECT_NE(std::string(e.what()).find("topic"), std::string::npos);
  }
  try {
    p.run(json{{"input", "x"}, {"topic", 3}});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.field(), "topic");
  }
  EXPECT_THROW(p.run(json::array()), InputError);
  RunResult ok = p.run(json{{"input", "x"}, {"topic", "sum"}});
  EXPECT_TRUE(ok.output["text"].is_string());
  EXPECT_EQ(ok.steps["text"], ok.output);
  auto req = p.single_request(json{{"input", "x"}, {"topic", "sum"}});
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->tenant, 1);
  EXPECT_EQ(req->max_tokens, 4);
  EXPECT_EQ(req->prompt, demo().tok->encode("# sum: x", true));
}

// With a chat template, `chat: true` makes the rendered prompt the user message, and a
// generate step without a prompt renders the input's messages.
TEST(Pipeline, ChatTemplateWrapsPrompt) {
  const auto tpl = tokenizer::ChatTemplate::parse(
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}");
  ModelHandle h = demo().handle();
  h.chat = &tpl;
  Pipeline p(pipeline_from(
                 "      - {name: a, type: generate, prompt: \"Q: {{ input }}\", max_tokens: 2}\n"),
             h, 1);
  auto r = p.single_request(json{{"input", "x"}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->prompt, demo().tok->encode("<user>Q: x<assistant>", false));
  Pipeline q(pipeline_from("      - {name: a, type: generate, max_tokens: 2}\n"), h, 1);
  auto m =
      q.single_request(json{{"messages", json::array({{{"role", "system"}, {"content", "s"}},
                                                      {{"role", "user"}, {"content", "u"}}})}});
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->prompt, demo().tok->encode("<system>s<user>u<assistant>", false));
  Pipeline two(
      pipeline_from("      - {name: a, type: generate, max_tokens: 2}\n"
                    "      - {name: b, type: generate, prompt: \"{{ a }}\", max_tokens: 2}\n"),
      h, 1);
  EXPECT_FALSE(two.single_request(json{{"input", "x"}}).has_value());
  RunResult both = two.run(json{{"input", "x"}});
  EXPECT_TRUE(both.steps.contains("a"));
  EXPECT_TRUE(both.steps.contains("b"));
  EXPECT_EQ(both.output, both.steps["b"]);
}

TEST(Pipeline, TooLongIs413) {
  PipelineConfig cfg = pipeline_from(
      "      - {name: text, type: generate, chat: false, prompt: \"{{ input }}\", max_tokens: 4}\n",
      "    limits: {max_input_tokens: 100}\n");
  Pipeline p(cfg, demo().handle(), 1);
  std::string text;
  for (int i = 0; i < 100; ++i) text += "return x + " + std::to_string(i) + "\n";
  const auto n = demo().tok->encode(text, true).size();
  ASSERT_GT(n, 100u);
  try {
    p.run(json{{"input", text}});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.status(), 413);
    EXPECT_NE(std::string(e.what()).find(std::to_string(n)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("100"), std::string::npos) << e.what();
  }
  // Over the model's context without a pipeline limit.
  PipelineConfig open = pipeline_from(
      "      - {name: text, type: generate, chat: false, prompt: \"{{ input }}\", max_tokens: "
      "4}\n");
  Pipeline q(open, demo().handle(), 1);
  std::string longer;
  for (int i = 0; i < 20; ++i) longer += text;
  try {
    q.run(json{{"input", longer}});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.status(), 413);
    EXPECT_NE(std::string(e.what()).find("1023"), std::string::npos) << e.what();
  }
}

TEST(Pipeline, ChatMessagesAndCancel) {
  PipelineConfig cfg = pipeline_from("      - {name: reply, type: generate, max_tokens: 4}\n");
  Pipeline p(cfg, demo().handle(), 1);
  RunResult r =
      p.run(json{{"messages", json::array({{{"role", "user"}, {"content", "def add(a, b):"}}})}});
  EXPECT_TRUE(r.output["text"].is_string());
  EXPECT_GT(r.prompt_tokens, 0);
  std::atomic<bool> cancelled{true};
  RunResult c = p.run(json{{"input", "def f():"}}, &cancelled);
  EXPECT_EQ(c.finish_reason, "cancelled");
  EXPECT_THROW(p.run(json{{"messages", "hi"}}), InputError);
}

}  // namespace
}  // namespace tandem::pipeline
