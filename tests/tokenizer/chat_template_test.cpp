// Chat template interpreter: parity with transformers' renders in the shared fixtures, plus
// unit tests of the jinja2 semantics templates rely on (expected strings worked out from
// jinja2's documented behaviour with trim_blocks and lstrip_blocks on).
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/error.h"

namespace tandem::tokenizer {
namespace {

using json = nlohmann::ordered_json;  // key order matters, as in Python dicts

std::filesystem::path fixtures_dir() {
  if (const char* s = std::getenv("TANDEM_SHARED"); s != nullptr && *s) return std::filesystem::path(s) / "fixtures";
  return std::filesystem::path(TANDEM_SOURCE_DIR "/../shared") / "fixtures";
}

std::string render(const std::string& tmpl, json extra = json::object(), json messages = json::array()) {
  ChatRenderInput in;
  in.messages = std::move(messages);
  in.extra = std::move(extra);
  return ChatTemplate::parse(tmpl).render(in);
}

std::string error_of(const std::string& tmpl, json extra = json::object()) {
  try {
    render(tmpl, std::move(extra));
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(ChatTemplateParity, FixtureRendersMatchTransformers) {
  std::ifstream f(fixtures_dir() / "tokenizers" / "chat_templates.json");
  ASSERT_TRUE(f) << "fixture missing under " << fixtures_dir();
  json all = json::parse(f);
  int checked = 0;
  for (const auto& [family, fx] : all.items()) {
    ChatTemplate tmpl = ChatTemplate::parse(fx["template"].get<std::string>());
    ASSERT_EQ(fx["conversations"].size(), fx["renders"].size()) << family;
    for (size_t i = 0; i < fx["conversations"].size(); ++i) {
      ChatRenderInput in;
      in.messages = fx["conversations"][i];
      in.add_generation_prompt = true;
      // The fixture writes a missing token as null ("None" in transformers); we pass "".
      in.bos_token = fx["bos_token"].is_string() ? fx["bos_token"].get<std::string>() : "";
      in.eos_token = fx["eos_token"].is_string() ? fx["eos_token"].get<std::string>() : "";
      EXPECT_EQ(tmpl.render(in), fx["renders"][i].get<std::string>()) << family << " conversation " << i;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6);
}

ChatTemplate qwen3() {
  std::ifstream f(fixtures_dir() / "tokenizers" / "chat_templates.json");
  json all = json::parse(f);
  return ChatTemplate::parse(all["qwen3"]["template"].get<std::string>());
}

TEST(ChatTemplateQwen3, ToolsBlock) {
  ChatRenderInput in;
  in.messages = json::array({{{"role", "user"}, {"content", "Weather?"}}});
  // Keys already in sorted order, so Python's insertion order and ours agree.
  in.tools = json::array({{{"function", {{"description", "Get weather"}, {"name", "get_weather"}}}, {"type", "function"}}});
  in.add_generation_prompt = true;
  EXPECT_EQ(qwen3().render(in),
            "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            "{\"function\": {\"description\": \"Get weather\", \"name\": \"get_weather\"}, \"type\": \"function\"}\n"
            "</tools>\n\nFor each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            "<args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateQwen3, ToolCallAndResponse) {
  ChatRenderInput in;
  in.messages = json::array({{{"role", "user"}, {"content", "W?"}},
                             {{"role", "assistant"},
                              {"content", ""},
                              {"tool_calls", json::array({{{"function", {{"arguments", {{"city", "Paris"}}}, {"name", "get_weather"}}}}})}},
                             {{"role", "tool"}, {"content", "sunny"}}});
  in.add_generation_prompt = true;
  EXPECT_EQ(qwen3().render(in),
            "<|im_start|>user\nW?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", "
            "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n"
            "</tool_response><|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateQwen3, ReasoningDroppedBeforeLastQuery) {
  ChatRenderInput in;
  in.messages = json::array({{{"role", "user"}, {"content", "Q1"}},
                             {{"role", "assistant"}, {"content", "<think>\nhmm\n</think>\n\nA1"}},
                             {{"role", "user"}, {"content", "Q2"}}});
  in.add_generation_prompt = true;
  EXPECT_EQ(qwen3().render(in),
            "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplateQwen3, ReasoningKeptAfterLastQuery) {
  ChatRenderInput in;
  in.messages = json::array({{{"role", "user"}, {"content", "Q1"}},
                             {{"role", "assistant"}, {"content", "<think>\nhmm\n</think>\n\nA1"}}});
  EXPECT_EQ(qwen3().render(in),
            "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n<think>\nhmm\n</think>\n\nA1<|im_end|>\n");
  in.messages[1] = {{"role", "assistant"}, {"content", "A1"}, {"reasoning_content", "why"}};
  EXPECT_EQ(qwen3().render(in),
            "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n<think>\nwhy\n</think>\n\nA1<|im_end|>\n");
}

TEST(ChatTemplateQwen3, ThinkingDisabled) {
  ChatRenderInput in;
  in.messages = json::array({{{"role", "user"}, {"content", "Hi"}}});
  in.add_generation_prompt = true;
  in.extra = {{"enable_thinking", false}};
  EXPECT_EQ(qwen3().render(in), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, WhitespaceControl) {
  EXPECT_EQ(render("{% if true %}\nA\n{% endif %}\nB"), "A\nB");            // trim_blocks
  EXPECT_EQ(render("  {% if true %}x{% endif %}"), "x");                    // lstrip_blocks
  EXPECT_EQ(render("a  {% if true %}x{% endif %}"), "a  x");                // not alone on its line
  EXPECT_EQ(render("  {%+ if true %}x{% endif %}"), "  x");                 // + keeps it
  EXPECT_EQ(render("  {{ 'v' }}\n"), "  v");                                // variables are not lstripped
  EXPECT_EQ(render("x \n {{- 'y' -}} \n z"), "xyz");
  EXPECT_EQ(render("a\n  {%- if true -%}  \n b{% endif %}"), "ab");
  EXPECT_EQ(render("{# note #}\nA"), "A");
  EXPECT_EQ(render("A\n    {# note #}\nB"), "A\nB");
  EXPECT_EQ(render("{% if true +%}\nA{% endif %}"), "\nA");
  EXPECT_EQ(render("A\r\nB\n"), "A\nB");  // newlines normalized, one trailing newline dropped
  EXPECT_EQ(render("{% for x in [1,2] %}\n  {{ x }}\n{% endfor %}"), "  1\n  2\n");
}

TEST(ChatTemplate, LoopVariables) {
  EXPECT_EQ(render("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
                   "{{ loop.length }}{{ loop.revindex }}|{% endfor %}"),
            "10TrueFalse33|21FalseFalse32|32FalseTrue31|");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}"), "2242");
  EXPECT_EQ(render("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"), "a=1;b=2;");
  EXPECT_EQ(render("{% set a = 1 %}{% for x in [1] %}{% set a = 2 %}{{ a }}{% endfor %}{{ a }}"), "21");
  EXPECT_EQ(render("{% for x in 'ab' %}{{ x }}.{% endfor %}"), "a.b.");
}

TEST(ChatTemplate, Namespace) {
  EXPECT_EQ(render("{% set ns = namespace(c=0, s='') %}{% for x in [1,2,3] %}{% set ns.c = ns.c + x %}"
                   "{% set ns.s = ns.s ~ x %}{% endfor %}{{ ns.c }} {{ ns.s }}"),
            "6 123");
  EXPECT_NE(error_of("{% set d = 1 %}{% set d.x = 2 %}").find("non-namespace"), std::string::npos);
}

TEST(ChatTemplate, Filters) {
  EXPECT_EQ(render("{{ '  a b \n' | trim }}|{{ [1,2,3] | length }}|{{ 'abc' | count }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}"),
            "a b|3|3|ABab");
  EXPECT_EQ(render("{{ 'hELLO wORLD' | capitalize }}|{{ 'hello wORLD-x' | title }}|{{ 'aXa' | replace('a', 'b') }}"),
            "Hello world|Hello World-X|bXb");
  EXPECT_EQ(render("{{ [1,2,3] | join(', ') }}|{{ [1,2] | first }}{{ [1,2] | last }}|{{ 'ab' | list }}|{{ 5 | string }}"),
            "1, 2, 3|12|['a', 'b']|5");
  EXPECT_EQ(render("{{ '42' | int + 1 }}|{{ missing | default('d') }}|{{ '' | default('e', true) }}|{{ x | d('no') }}",
                   {{"x", "yes"}}),
            "43|d|e|yes");
  EXPECT_EQ(render("{{ {'a': 1} | items | list }}"), "[['a', 1]]");
  EXPECT_EQ(render("{{ m | selectattr('role', 'equalto', 'user') | map(attribute='c') | join }}",
                   {{"m", json::array({{{"role", "user"}, {"c", "u1"}}, {{"role", "bot"}, {"c", "b"}}, {{"role", "user"}, {"c", "u2"}}})}}),
            "u1u2");
  EXPECT_EQ(render("{{ 'x' | safe }}"), "x");
  EXPECT_NE(error_of("{{ 1 | nosuchfilter }}").find("nosuchfilter"), std::string::npos);
}

TEST(ChatTemplate, Tests) {
  EXPECT_EQ(render("{{ x is defined }}{{ y is undefined }}{{ none is none }}{{ 's' is string }}{{ {} is mapping }}"
                   "{{ [] is iterable }}{{ 's' is sequence }}{{ 1.5 is number }}{{ true is boolean }}{{ true is true }}"
                   "{{ 0 is false }}{{ x is not none }}",
                   {{"x", 1}}),
            "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueFalseTrue");
  EXPECT_EQ(render("{{ 'a' in 'cat' }}{{ 2 in [1,2] }}{{ 'k' in {'k': 1} }}{{ 3 not in [1] }}"), "TrueTrueTrueTrue");
}

TEST(ChatTemplate, ExpressionsAndMethods) {
  EXPECT_EQ(render("{{ 'hello'[::-1] }}|{{ [1,2,3,4][1:3] }}|{{ 'héllo'[1:3] }}|{{ [1,2,3][-1] }}|{{ 'abc'[-2:] }}"),
            "olleh|[2, 3]|él|3|bc");
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }}"),
            "3 -4 1 2 3.5 1024 7");
  EXPECT_EQ(render("{{ none }}{{ true }}{{ 1.0 }}{{ [1, 'a'] }}{{ {'a': 1} }}{{ 1e20 }}{{ 0.1 + 0.2 }}"),
            "NoneTrue1.0[1, 'a']{'a': 1}1e+200.30000000000000004");
  EXPECT_EQ(render("{{ 'yes' if 1 < 2 < 3 else 'no' }}{{ 'a' if false }}|{{ 1 and 'x' }}{{ 0 or 'y' }}{{ not 0 }}"),
            "yes|xyTrue");
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a-b-c'.rsplit('-', 1) }}|{{ 'xxaxx'.strip('x') }}"),
            "['a', 'b', '', 'c']|['a', 'b']|['a-b', 'c']|a");
  EXPECT_EQ(render("{{ 'ab'.startswith('a') }}{{ 'ab'.endswith('a') }}{{ 'abc'.find('c') }}{{ 'a b'.title() }}"
                   "{{ 'aa'.replace('a', 'b') }}{{ 'A'.lower() }}{{ 'a'.upper() }}"),
            "TrueFalse2A BbbaA");
  EXPECT_EQ(render("{{ d.get('a') }}{{ d.get('z', 'none') }}{{ d.keys() | list }}{{ d.values() | list }}{{ d['a'] }}{{ d.a }}",
                   {{"d", {{"a", 1}}}}),
            "1none['a'][1]11");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }}|{{ 'x' * 3 }}|{{ [1] + [2] }}|{{ \"q\\\"\\n\" }}"), "a1None|xxx|[1, 2]|q\"\n");
  EXPECT_EQ(render("{% macro greet(name, p='Hi') %}{{ p }} {{ name }}{% endmacro %}{{ greet('A') }}/{{ greet('B', p='Yo') }}"),
            "Hi A/Yo B");
  EXPECT_EQ(render("{% set x %}in{{ 1 }}{% endset %}[{{ x }}]"), "[in1]");
  EXPECT_EQ(render("{{ messages[0].content }}{{ messages.0.role }}", {}, json::array({{{"role", "u"}, {"content", "c"}}})), "cu");
}

TEST(ChatTemplate, ToJson) {
  EXPECT_EQ(render("{{ {'a': [1, 2.5, 'x'], 'b': none} | tojson }}"), "{\"a\": [1, 2.5, \"x\"], \"b\": null}");
  EXPECT_EQ(render("{{ [1, {'k': true}] | tojson(indent=2) }}"), "[\n  1,\n  {\n    \"k\": true\n  }\n]");
  EXPECT_EQ(render("{{ 'é\"\n\x01' | tojson }}|{{ [] | tojson }}{{ {} | tojson(indent=2) }}"),
            "\"é\\\"\\n\\u0001\"|[]{}");
}

TEST(ChatTemplate, Undefined) {
  EXPECT_EQ(render("[{{ missing }}]"), "[]");
  EXPECT_EQ(render("{% if missing %}a{% else %}b{% endif %}"), "b");
  EXPECT_EQ(render("{% for x in missing %}x{% endfor %}{{ missing | length }}{{ missing ~ 'x' }}"), "0x");
  EXPECT_EQ(render("{{ d.nokey }}|{{ d.nokey is defined }}|{{ d['nokey'] is undefined }}", {{"d", json::object()}}), "|False|True");
  EXPECT_NE(error_of("{{ missing.attr }}").find("'missing' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ missing[0] }}").find("'missing' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ missing + 1 }}").find("'missing' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ missing() }}").find("missing"), std::string::npos);
}

TEST(ChatTemplate, RaiseException) {
  EXPECT_EQ(error_of("{{ raise_exception('roles must alternate') }}"), "roles must alternate");
}

TEST(ChatTemplate, UnsupportedConstructNamesItAndLine) {
  std::string e = error_of("ok\n{% include 'other.jinja' %}");
  EXPECT_NE(e.find("include"), std::string::npos) << e;
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
  e = error_of("{% raw %}x{% endraw %}");
  EXPECT_NE(e.find("raw"), std::string::npos) << e;
}

TEST(ChatTemplate, MalformedTemplatesThrow) {
  const char* bad[] = {"{% if x %}", "{{ 1 + }}", "{% for %}", "{{ 'abc }}", "{% endif %}", "{{ (1 }}", "{% set %}",
                       "{{", "{#", "{% for x in y %}{% endif %}", "{{ 1 2 }}", "{% if %}{% endif %}", "{{ ) }}",
                       "{% macro m( %}{% endmacro %}", "{% break %}", "{{ x[] }}", "{{ x. }}", "{% %}", "{{ }}",
                       "{% if x %}{% else %}{% else %}{% endif %}", "{{ a is }}", "{{ 'a' | }}"};
  for (const char* t : bad) {
    EXPECT_THROW(ChatTemplate::parse(t), Error) << t;
  }
  std::string e = error_of("line1\n{% if x %}\nbody");
  EXPECT_NE(e.find("endif"), std::string::npos) << e;
}

TEST(ChatTemplate, RuntimeLimitsThrowInsteadOfCrashing) {
  EXPECT_THROW(render("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"), Error);
  EXPECT_THROW(render("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}"), Error);
  EXPECT_THROW(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"), Error);
  EXPECT_THROW(render("{{ 'x' * 100000000 }}"), Error);
  EXPECT_THROW(render("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"), Error);
  EXPECT_THROW(render("{{ 9223372036854775807 + 1 }}"), Error);
  EXPECT_THROW(render("{{ 1 // 0 }}"), Error);
}

TEST(ChatTemplate, FromModelDir) {
  auto dir = std::filesystem::temp_directory_path() / ("tandem-ct-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "tokenizer_config.json")
        << R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>", "chat_template": [{"name": "default", "template": "D{{ bos_token }}"}, {"name": "tool_use", "template": "T"}]})";
  }
  std::string bos, eos;
  ChatTemplate t = ChatTemplate::from_model_dir(dir, "default", &bos, &eos);
  EXPECT_EQ(bos, "<s>");
  EXPECT_EQ(eos, "</s>");
  ChatRenderInput in;
  in.bos_token = bos;
  EXPECT_EQ(t.render(in), "D<s>");
  EXPECT_EQ(ChatTemplate::from_model_dir(dir, "tool_use").render(in), "T");
  EXPECT_THROW(ChatTemplate::from_model_dir(dir, "nope"), Error);
  std::filesystem::remove(dir / "tokenizer_config.json");
  { std::ofstream(dir / "chat_template.jinja") << "J\n"; }
  EXPECT_EQ(ChatTemplate::from_model_dir(dir).render(in), "J");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem::tokenizer

namespace tandem::tokenizer {
namespace {

TEST(ChatTemplate, TojsonKeepsTheKeyOrderOfTheInput) {
  // transformers renders tools with json.dumps over Python dicts: insertion order.
  ChatRenderInput in;
  in.tools = nlohmann::ordered_json::parse(R"([{"type":"function","function":{"name":"f","parameters":{"zeta":1,"alpha":2}}}])");
  auto t = ChatTemplate::parse("{{ tools[0] | tojson }}|{% for k, v in tools[0].function.parameters.items() %}{{ k }}{% endfor %}");
  EXPECT_EQ(t.render(in), R"({"type": "function", "function": {"name": "f", "parameters": {"zeta": 1, "alpha": 2}}}|zetaalpha)");
}

// A namespace stored in itself, directly or through another namespace or a
// loop object, is a reference cycle; the render frees it anyway (the ASan
// build's leak checker fails this test otherwise; found by fuzz_chat_template).
TEST(ChatTemplateNamespace, CyclesAreFreed) {
  EXPECT_EQ(render("{% set ns = namespace(n=1) %}{% set ns.self = ns %}{{ ns.self.self.n }}"), "1");
  EXPECT_EQ(render("{% set a = namespace() %}{% set b = namespace(a=a) %}{% set a.b = b %}{{ a.b.a.b is defined }}"),
            "True");
  EXPECT_EQ(render("{% set ns = namespace() %}{% for x in [ns] %}{% set ns.l = loop %}{% endfor %}ok"), "ok");
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns.missing.x }}"), "<no error>");
}

}  // namespace
}  // namespace tandem::tokenizer
