#include "tokenizer/added_vocabulary.h"

#include <algorithm>
#include <array>

#include "tokenizer/model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"

namespace tandem::tokenizer {

// Byte trie over token contents; walking it from a position finds the longest token starting
// there, which is what Hugging Face's leftmost-longest Aho-Corasick scan reports.
class AddedVocabulary::Trie {
 public:
  Trie() : nodes_(1) {}

  void insert(std::string_view content, int32_t id) {
    int32_t node = 0;
    for (char c : content) {
      const auto byte = static_cast<uint8_t>(c);
      auto& children = nodes_[static_cast<size_t>(node)].children;
      auto it = std::lower_bound(children.begin(), children.end(), byte,
                                 [](const auto& child, uint8_t b) { return child.first < b; });
      if (it != children.end() && it->first == byte) {
        node = it->second;
        continue;
      }
      const auto created = static_cast<int32_t>(nodes_.size());
      children.insert(it, {byte, created});
      nodes_.emplace_back();
      node = created;
    }
    if (nodes_[static_cast<size_t>(node)].id < 0) nodes_[static_cast<size_t>(node)].id = id;
    first_bytes_[static_cast<uint8_t>(content[0])] = true;
  }

  bool empty() const { return nodes_.size() == 1; }

  // Length and id of the longest token starting at `pos`, or {0, -1}.
  std::pair<size_t, int32_t> longest_at(std::string_view text, size_t pos) const {
    if (!first_bytes_[static_cast<uint8_t>(text[pos])]) return {0, -1};
    std::pair<size_t, int32_t> best{0, -1};
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      const auto& children = nodes_[static_cast<size_t>(node)].children;
      const auto byte = static_cast<uint8_t>(text[i]);
      auto it = std::lower_bound(children.begin(), children.end(), byte,
                                 [](const auto& child, uint8_t b) { return child.first < b; });
      if (it == children.end() || it->first != byte) break;
      node = it->second;
      if (nodes_[static_cast<size_t>(node)].id >= 0) {
        best = {i + 1 - pos, nodes_[static_cast<size_t>(node)].id};
      }
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t id = -1;
  };
  std::vector<Node> nodes_;
  std::array<bool, 256> first_bytes_{};
};

AddedVocabulary::AddedVocabulary(const std::vector<AddedToken>& tokens, const Model& model,
                                 const Normalizer* normalizer)
    : raw_trie_(std::make_unique<Trie>()), normalized_trie_(std::make_unique<Trie>()) {
  // Mirrors AddedVocabulary::add_tokens in Hugging Face tokenizers.
  std::vector<const AddedToken*> specials, classics;
  for (const AddedToken& t : tokens) {
    if (t.special && !t.content.empty() && !special_contents_.contains(t.content)) {
      special_contents_.emplace(t.content, true);
      specials.push_back(&t);
    }
  }
  const auto same = [](const AddedToken& a, const AddedToken& b) {
    return a.content == b.content && a.single_word == b.single_word && a.lstrip == b.lstrip &&
           a.rstrip == b.rstrip && a.normalized == b.normalized && a.special == b.special;
  };
  for (const AddedToken& t : tokens) {
    if (t.content.empty()) continue;
    const std::optional<int32_t> existing = token_to_id(t.content);
    // An identical token (all flags equal) is ignored; a content's id never changes, so the
    // only candidate is the token already stored under that content's id.
    if (existing && same(by_id_.at(*existing), t)) continue;
    const auto model_size = static_cast<int32_t>(model.size());
    int32_t id;
    if (existing) {
      id = *existing;
    } else if (auto in_model = model.token_to_id(t.content)) {
      id = *in_model;
    } else if (by_content_.empty()) {
      id = model_size;
    } else {
      id = max_id_ >= model_size || model_size == 0 ? max_id_ + 1 : model_size;
    }
    by_content_.insert_or_assign(t.content, id);
    AddedToken stored = t;
    stored.id = id;
    by_id_.insert_or_assign(id, std::move(stored));
    max_id_ = std::max(max_id_, id);
    if (!special_contents_.contains(t.content)) classics.push_back(&t);
  }

  // refresh_added_tokens: specials first, then the others, each into the trie matching raw
  // text or the one matching normalized text.
  std::vector<const AddedToken*> ordered = specials;
  ordered.insert(ordered.end(), classics.begin(), classics.end());
  for (const AddedToken* t : ordered) {
    const int32_t id = by_content_.find(t->content)->second;
    if (!t->normalized) {
      raw_trie_->insert(t->content, id);
    } else {
      const std::string content = normalizer ? normalizer->normalize(t->content) : t->content;
      if (!content.empty()) normalized_trie_->insert(content, id);
    }
  }
  const bool needs_words =
      std::any_of(by_id_.begin(), by_id_.end(), [](const auto& e) { return e.second.single_word; });
  if (needs_words) {
    // Rust regex's Unicode `\w`, which Hugging Face uses for single_word boundaries.
    word_char_.emplace(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])",
                       "single_word boundary pattern");
  }
}

AddedVocabulary::~AddedVocabulary() = default;

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(content);
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const std::string* AddedVocabulary::id_to_token(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second.content;
}

bool AddedVocabulary::is_special_content(std::string_view content) const {
  return special_contents_.find(content) != special_contents_.end();
}

bool AddedVocabulary::is_word_char_before(std::string_view text, size_t end) const {
  if (end == 0) return false;
  const size_t start = utf8::previous_start(text, end);
  return word_char_->matches_at_start(text.substr(start, end - start));
}

bool AddedVocabulary::is_word_char_at(std::string_view text, size_t pos) const {
  if (pos >= text.size()) return false;
  return word_char_->matches_at_start(text.substr(pos, utf8::decode(text, pos).len));
}

// Hugging Face's find_matches, returning only the token matches (the gaps are implied).
void AddedVocabulary::find_matches(std::string_view text, const Trie& trie,
                                   std::vector<Match>& out) const {
  out.clear();
  if (trie.empty()) return;
  size_t start_offset = 0;  // end of the previous accepted match
  size_t pos = 0;
  while (pos < text.size()) {
    const auto [len, id] = trie.longest_at(text, pos);
    if (len == 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;  // matches never overlap, even when this one is rejected below
    const AddedToken& token = by_id_.at(id);
    if (token.single_word) {
      const bool start_space = start == 0 || !is_word_char_before(text, start);
      const bool stop_space = stop == text.size() || !is_word_char_at(text, stop);
      if (!start_space || !stop_space) continue;
    }
    if (token.lstrip) {
      size_t s = start;
      while (s > 0) {
        const size_t prev = utf8::previous_start(text, s);
        const utf8::Char c = utf8::decode(text, prev);
        if (!c.valid || !utf8::is_white_space(c.cp)) break;
        s = prev;
      }
      start = std::max(s, start_offset);
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        const utf8::Char c = utf8::decode(text, stop);
        if (!c.valid || !utf8::is_white_space(c.cp)) break;
        stop += c.len;
      }
    }
    // rstrip may have swallowed the start of the next raw match; never overlap segments.
    start = std::max(start, start_offset);
    out.push_back({start, stop, id});
    start_offset = stop;
    pos = std::max(pos, stop);
  }
}

void AddedVocabulary::split(std::string_view text, const Normalizer* normalizer,
                            SegmentSink sink) const {
  std::vector<Match> raw, normalized;
  std::string normalized_text;
  const auto emit_plain = [&](std::string_view plain) {
    if (plain.empty()) return;
    std::string_view norm = plain;
    if (normalizer) {
      normalized_text = normalizer->normalize(plain);
      norm = normalized_text;
    }
    find_matches(norm, *normalized_trie_, normalized);
    size_t prev = 0;
    for (const Match& m : normalized) {
      if (m.begin > prev) sink(norm.substr(prev, m.begin - prev), -1);
      sink({}, m.id);
      prev = m.end;
    }
    if (prev < norm.size()) sink(norm.substr(prev), -1);
  };
  find_matches(text, *raw_trie_, raw);
  size_t prev = 0;
  for (const Match& m : raw) {
    emit_plain(text.substr(prev, m.begin - prev));
    sink({}, m.id);
    prev = m.end;
  }
  emit_plain(text.substr(prev));
}

}  // namespace tandem::tokenizer
