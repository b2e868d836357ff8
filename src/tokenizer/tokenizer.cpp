#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <new>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_node.h"
#include "tokenizer/model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/utf8.h"

namespace tandem::tokenizer {

struct Tokenizer::Impl {
  std::string source;
  // Set when loaded from a SentencePiece .model: it then answers every call and the
  // pipeline stages below are empty.
  std::unique_ptr<SentencePieceModel> sentencepiece;
  std::unique_ptr<Normalizer> normalizer;       // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer;  // may be null
  std::unique_ptr<Model> model;
  std::unique_ptr<AddedVocabulary> added;
  std::unique_ptr<PostProcessor> post_processor;  // may be null
  std::unique_ptr<Decoder> decoder;               // may be null: tokens joined by spaces
  int32_t vocab_size = 0;

  static std::unique_ptr<Impl> create(const nlohmann::json& doc, const std::string& source);

  const std::string* token_of(int32_t id) const {
    if (const std::string* t = added->id_to_token(id)) return t;
    return model->id_to_token(id);
  }
};

namespace {

std::vector<AddedToken> parse_added_tokens(const JsonNode& list) {
  list.expect_array();
  std::vector<AddedToken> tokens;
  tokens.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonNode entry = list.at(i);
    AddedToken t;
    // Checked here, but like Hugging Face the added vocabulary assigns the effective id.
    t.id = entry.at("id").as_token_id();
    t.content = entry.at("content").as_string();
    t.single_word = entry.get_bool("single_word", false);
    t.lstrip = entry.get_bool("lstrip", false);
    t.rstrip = entry.get_bool("rstrip", false);
    t.normalized = entry.get_bool("normalized", true);
    t.special = entry.get_bool("special", false);
    tokens.push_back(std::move(t));
  }
  return tokens;
}

bool ends_with_replacement(const std::string& s) {
  return s.size() >= utf8::kReplacementUtf8.size() &&
         std::string_view(s).substr(s.size() - utf8::kReplacementUtf8.size()) ==
             utf8::kReplacementUtf8;
}

}  // namespace

std::unique_ptr<Tokenizer::Impl> Tokenizer::Impl::create(const nlohmann::json& doc,
                                                         const std::string& source) {
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  const JsonNode root(doc, impl->source, "");
  root.expect_object();
  // "truncation" and "padding" configure batch shaping in Hugging Face, not tokenization; the
  // engine manages sequence lengths itself, so they are ignored.
  if (auto n = root.find("normalizer")) impl->normalizer = make_normalizer(*n);
  if (auto p = root.find("pre_tokenizer")) impl->pre_tokenizer = make_pre_tokenizer(*p);
  impl->model = make_model(root.at("model"));
  std::vector<AddedToken> added;
  if (auto list = root.find("added_tokens")) added = parse_added_tokens(*list);
  impl->added = std::make_unique<AddedVocabulary>(added, *impl->model, impl->normalizer.get());
  if (auto p = root.find("post_processor")) impl->post_processor = make_post_processor(*p);
  if (auto d = root.find("decoder")) impl->decoder = make_decoder(*d);
  impl->vocab_size = std::max(impl->model->max_id(), impl->added->max_id()) + 1;
  return impl;
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path, ec)) {
    // tokenizer.json wins: when both exist it carries the added tokens and post-processing
    // the checkpoint's authors configured; tokenizer.model alone is the older layout.
    file = path / "tokenizer.json";
    if (!std::filesystem::exists(file, ec) && std::filesystem::exists(path / "tokenizer.model", ec)) {
      file = path / "tokenizer.model";
    }
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot open: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(file.string() + ": read failed");
  if (file.extension() == ".model") return from_sentencepiece(text.str(), file.string());
  return from_json(text.str(), file.string());
}

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(std::string_view serialized, const std::string& source_name) {
  auto impl = std::make_unique<Impl>();
  impl->source = source_name;
  impl->sentencepiece = std::make_unique<SentencePieceModel>(serialized, impl->source);
  impl->vocab_size = impl->sentencepiece->vocab_size();
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::unique_ptr<Tokenizer> Tokenizer::from_json(std::string_view json_text,
                                                const std::string& source_name) {
  // Everything below reports tandem::Error; this boundary converts whatever else a library
  // might throw (nlohmann, allocation) so callers and the fuzzer see one exception type.
  try {
    const nlohmann::json doc = nlohmann::json::parse(json_text.begin(), json_text.end());
    return std::unique_ptr<Tokenizer>(new Tokenizer(Impl::create(doc, source_name)));
  } catch (const Error&) {
    throw;
  } catch (const nlohmann::json::exception& e) {
    throw Error(source_name + ": invalid JSON: " + e.what());
  } catch (const std::bad_alloc&) {
    throw Error(source_name + ": out of memory while loading the tokenizer");
  } catch (const std::exception& e) {
    throw Error(source_name + ": " + e.what());
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& impl = *impl_;
  if (impl.sentencepiece) return impl.sentencepiece->encode(text, add_special_tokens);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  const auto tokenize = [&](std::string_view piece) { impl.model->tokenize(piece, ids); };
  // Only the first run starts at offset 0 (what Metaspace's "first" scheme asks about).
  bool at_start = true;
  impl.added->split(text, impl.normalizer.get(), [&](std::string_view run, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
    } else if (impl.pre_tokenizer) {
      impl.pre_tokenizer->pre_tokenize(run, at_start, tokenize);
    } else {
      tokenize(run);
    }
    at_start = false;
  });
  if (impl.post_processor) impl.post_processor->process(ids, add_special_tokens);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  if (impl.sentencepiece) return impl.sentencepiece->decode(ids, skip_special_tokens);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= impl.vocab_size) {
      throw Error(impl.source + ": cannot decode token id " + std::to_string(id) +
                  ": outside the vocabulary [0, " + std::to_string(impl.vocab_size) + ")");
    }
    const std::string* token = impl.token_of(id);
    if (!token) continue;
    if (skip_special_tokens && impl.added->is_special_content(*token)) continue;
    tokens.push_back(*token);
  }
  if (impl.decoder) impl.decoder->decode_chain(tokens);
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0 && !impl.decoder) out += ' ';
    out += tokens[i];
  }
  return out;
}

int32_t Tokenizer::vocab_size() const {
  return impl_->vocab_size;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (impl_->sentencepiece) return impl_->sentencepiece->token_to_id(token);
  if (auto id = impl_->added->token_to_id(token)) return id;
  return impl_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (impl_->sentencepiece) return impl_->sentencepiece->id_to_token(id);
  if (const std::string* t = impl_->token_of(id)) return *t;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  if (impl_->sentencepiece) return impl_->sentencepiece->is_special(id);
  const std::string* t = impl_->token_of(id);
  return t && impl_->added->is_special_content(*t);
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(&tok), skip_special_tokens_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  if (prefix_.empty() && !ids_.empty()) {
    std::string new_prefix = tok_->decode(ids_, skip_special_tokens_);
    if (!ends_with_replacement(new_prefix)) {
      prefix_ = std::move(new_prefix);
      prefix_index_ = ids_.size();
    }
  }
  ids_.push_back(id);
  std::string text;
  try {
    text = tok_->decode(ids_, skip_special_tokens_);
  } catch (...) {
    ids_.pop_back();  // a bad id must not poison the rest of the stream
    throw;
  }
  // Hold back while the text ends in U+FFFD: it may be the start of a character whose
  // remaining bytes come with the next tokens.
  if (text.size() <= prefix_.size() || ends_with_replacement(text)) return {};
  if (text.compare(0, prefix_.size(), prefix_) != 0) {
    throw Error("stream decode: the text before token " + std::to_string(id) +
                " changed when it was added; this decoder cannot stream");
  }
  std::string fresh = text.substr(prefix_.size());
  const size_t new_prefix_index = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  prefix_ = tok_->decode(ids_, skip_special_tokens_);
  prefix_index_ = new_prefix_index;
  return fresh;
}

std::string StreamDecoder::flush() {
  const std::string text = tok_->decode(ids_, skip_special_tokens_);
  size_t common = 0;
  while (common < prefix_.size() && common < text.size() && prefix_[common] == text[common]) {
    ++common;
  }
  std::string rest = text.substr(common);
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
  return rest;
}

}  // namespace tandem::tokenizer
