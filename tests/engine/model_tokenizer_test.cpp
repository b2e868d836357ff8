// Tokenizers read from GGUF metadata give llama.cpp's ids.
#include "engine/model_tokenizer.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

TEST(GgufTokenizer, Gpt2VocabMatchesLlamaCppIds) {
  const auto dir = testing::shared_dir() / "fixtures" / "gguf" / "vocab";
  auto tok = engine::load_model_tokenizer(dir / "gpt2.gguf");
  auto ref = testing::read_json(dir / "gpt2.llama_cpp_ids.json");
  const auto& texts = ref["texts"];
  const auto& ids = ref["ids"];
  ASSERT_EQ(texts.size(), ids.size());
  ASSERT_GT(texts.size(), 20u);
  size_t compared = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    if (text.find("<|endoftext|>") != std::string::npos) {
      // llama.cpp's ids were made with parse_special=false (control-token text taken
      // literally); like Hugging Face we match control tokens in text.
      EXPECT_EQ(tok->encode(text, false).at(0), 50256) << text;
      continue;
    }
    EXPECT_EQ(tok->encode(text, false), ids[i].get<std::vector<int32_t>>()) << i << ": " << text;
    EXPECT_EQ(tok->decode(tok->encode(text, false)), text) << i;
    ++compared;
  }
  EXPECT_EQ(compared, texts.size() - 1);
}

TEST(GgufTokenizer, SentencePieceVocabMatchesLlamaCppIds) {
  // llama2.gguf holds a SentencePiece ("llama") vocabulary: pieces, scores, types.
  const auto dir = testing::shared_dir() / "fixtures" / "gguf" / "vocab";
  auto tok = engine::load_model_tokenizer(dir / "llama2.gguf");
  auto ref = testing::read_json(dir / "llama2.llama_cpp_ids.json");
  const auto& texts = ref["texts"];
  const auto& ids = ref["ids"];
  ASSERT_GT(texts.size(), 20u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    EXPECT_EQ(tok->encode(text, false), ids[i].get<std::vector<int32_t>>()) << i << ": " << text;
  }
  // The same text through the real tokenizer.model gives the same ids.
  auto spm = tokenizer::Tokenizer::load(testing::shared_dir() / "fixtures" / "tokenizers" / "llama2" / "tokenizer.model");
  for (const char* t : {"Hello world", "  leading spaces and ünïcödé 😀", "<s> not special </s>", "x = f(3.14)\n"}) {
    EXPECT_EQ(tok->encode(t, true), spm->encode(t, true)) << t;
    EXPECT_EQ(tok->decode(tok->encode(t, false)), spm->decode(spm->encode(t, false))) << t;
  }
}

TEST(GgufTokenizer, ModelFolderStillUsesTokenizerJson) {
  auto tok = engine::load_model_tokenizer(testing::source_dir() / "models" / "demo");
  EXPECT_EQ(tok->encode("Return the", true), (std::vector<int32_t>{1104, 269}));
}

}  // namespace
}  // namespace tandem
