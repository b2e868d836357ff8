// ChatTemplate::free_variables: what a template reads from its caller, less what it binds.
#include <gtest/gtest.h>

#include "tokenizer/chat_template.h"

namespace tandem::tokenizer {
namespace {

TEST(ChatTemplate, FreeVariables) {
  auto t = ChatTemplate::parse(
      "{% set greeting = 'hi' %}{{ greeting }} {{ name }}{% for d in docs %}{{ d.text }}{{ "
      "loop.index }}"
      "{% endfor %}{% macro m(x, y=limit) %}{{ x }}{% endmacro %}{{ m(title) }}{{ raise_exception "
      "}}"
      "{% if flag is defined %}{{ range(3) | join(',') }}{% endif %}");
  std::vector<std::pair<std::string, bool>> got;
  for (const auto& v : t.free_variables()) got.emplace_back(v.name, v.printed);
  const std::vector<std::pair<std::string, bool>> want{
      {"docs", false}, {"flag", false}, {"limit", false}, {"name", true}, {"title", false}};
  EXPECT_EQ(got, want);
  EXPECT_TRUE(ChatTemplate::parse("plain text").free_variables().empty());
}

}  // namespace
}  // namespace tandem::tokenizer
