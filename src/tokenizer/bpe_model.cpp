// Byte-pair encoding as Hugging Face's models/bpe: split a piece into characters, then apply
// merges lowest rank first (leftmost on ties) with a priority queue over adjacent pairs, so a
// long piece costs O(n log n) rather than the O(n^2) of rescanning for the best pair.
#include <algorithm>
#include <array>
#include <cstdio>
#include <mutex>
#include <queue>
#include <span>

#include "base/error.h"
#include "tokenizer/model.h"
#include "tokenizer/string_map.h"
#include "tokenizer/utf8.h"

namespace tandem::tokenizer {
namespace {

// (left id, right id) -> (rank, merged id), open addressing with linear probing: merge lookups
// dominate BPE time and std::unordered_map's node chasing is several times slower.
class PairMap {
 public:
  struct Value {
    int32_t rank;
    int32_t new_id;
  };

  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, Value{0, 0});
    mask_ = cap - 1;
  }

  // Later entries win, as when Hugging Face collects merges into a HashMap.
  void insert_or_assign(int32_t a, int32_t b, Value v) {
    const uint64_t key = make_key(a, b);
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == kEmpty || keys_[i] == key) {
        keys_[i] = key;
        values_[i] = v;
        return;
      }
    }
  }

  const Value* find(int32_t a, int32_t b) const {
    const uint64_t key = make_key(a, b);
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  // Ids are below 2^24, so no real key is all ones.
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t make_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0;
};

// Results for recently seen pieces. Natural text repeats words constantly, so this skips most
// merge work; it is bounded and guarded by a mutex because encode() runs on many threads.
class WordCache {
 public:
  static constexpr size_t kCapacity = 10000;    // as Hugging Face's BPE cache
  static constexpr size_t kMaxWordBytes = 256;  // longer pieces are rare and not cached

  bool lookup(std::string_view word, std::vector<int32_t>& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = map_.find(word);
    if (it == map_.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }

  void store(std::string_view word, std::span<const int32_t> ids) {
    std::lock_guard<std::mutex> lock(mutex_);
    // Starting over when full keeps memory bounded and adapts to the current traffic.
    if (map_.size() >= kCapacity) map_.clear();
    map_.try_emplace(std::string(word), ids.begin(), ids.end());
  }

 private:
  mutable std::mutex mutex_;
  StringMap<std::vector<int32_t>> map_;
};

class BpeModel final : public Model {
 public:
  explicit BpeModel(const JsonNode& node);

  void tokenize(std::string_view piece, std::vector<int32_t>& ids) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  const std::string* id_to_token(int32_t id) const override {
    if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
    return id_to_token_[static_cast<size_t>(id)];
  }
  int32_t max_id() const override { return static_cast<int32_t>(id_to_token_.size()) - 1; }
  size_t size() const override { return vocab_.size(); }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    uint32_t len;  // bytes of the piece it covers; 0 once merged into its left neighbour
  };

  void merge_word(std::string_view piece, std::vector<int32_t>& ids) const;
  void merge_all(std::vector<Symbol>& symbols) const;
  int32_t unk_id() const;

  std::string source_;
  StringMap<int32_t> vocab_;
  std::vector<const std::string*> id_to_token_;  // points at vocab_ keys (stable in the map)
  PairMap merges_;
  std::optional<std::string> unk_token_;
  std::optional<int32_t> unk_id_;
  std::string prefix_;                   // continuing_subword_prefix ("" = none: same result)
  std::string suffix_;                   // end_of_word_suffix
  std::array<int32_t, 256> byte_ids_{};  // id of "<0xXX>" for byte_fallback, or -1
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  mutable WordCache cache_;
};

BpeModel::BpeModel(const JsonNode& node) : source_(node.source()) {
  if (auto dropout = node.find("dropout")) {
    if (!dropout->value().is_number()) dropout->fail("must be a number or null");
    if (dropout->value().get<double>() > 0.0) {
      dropout->fail("> 0 is not supported (BPE dropout randomizes encodings; it is for training)");
    }
  }
  unk_token_ = node.get_string("unk_token");
  prefix_ = node.get_string("continuing_subword_prefix").value_or("");
  suffix_ = node.get_string("end_of_word_suffix").value_or("");
  fuse_unk_ = node.get_bool("fuse_unk", false);
  byte_fallback_ = node.get_bool("byte_fallback", false);
  ignore_merges_ = node.get_bool("ignore_merges", false);

  const JsonNode vocab = node.at("vocab");
  vocab.expect_object();
  vocab_.reserve(vocab.size());
  int32_t max_id = -1;
  for (const auto& [token, value] : vocab.value().items()) {
    const int32_t id = JsonNode(value, source_, vocab.child_path(token)).as_token_id();
    vocab_.insert_or_assign(token, id);
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(static_cast<size_t>(max_id + 1), nullptr);
  for (const auto& [token, id] : vocab_) id_to_token_[static_cast<size_t>(id)] = &token;
  if (unk_token_) unk_id_ = token_to_id(*unk_token_);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[static_cast<size_t>(b)] = token_to_id(name).value_or(-1);
  }

  const JsonNode merges = node.at("merges");
  merges.expect_array();
  merges_.reserve(merges.size());
  int32_t rank = 0;
  std::string merged;
  for (size_t i = 0; i < merges.size(); ++i) {
    const JsonNode entry = merges.at(i);
    std::string left, right;
    if (entry.value().is_string()) {
      // Legacy "a b" lines, as in merges.txt; "#version" headers are not merges.
      const std::string line = entry.as_string();
      if (line.rfind("#version", 0) == 0) continue;
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        entry.fail("must be two tokens separated by one space, got '" + line + "'");
      }
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else {
      entry.expect_array();
      if (entry.size() != 2) entry.fail("must be a pair of tokens");
      left = entry.at(0).as_string();
      right = entry.at(1).as_string();
    }
    const auto lookup = [&](const std::string& token) {
      auto id = token_to_id(token);
      if (!id) entry.fail("refers to '" + token + "', which is not in model.vocab");
      return *id;
    };
    const int32_t a = lookup(left), b = lookup(right);
    if (right.size() < prefix_.size()) {
      entry.fail("token '" + right + "' is shorter than continuing_subword_prefix");
    }
    merged = left;
    merged.append(right, prefix_.size());
    merges_.insert_or_assign(a, b, {rank, lookup(merged)});
    ++rank;
  }
}

int32_t BpeModel::unk_id() const {
  if (!unk_id_) {
    throw Error(source_ + ": model.unk_token '" + *unk_token_ +
                "' is needed for this text but is not in model.vocab");
  }
  return *unk_id_;
}

void BpeModel::tokenize(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    // Llama 3: a piece that is itself a token is emitted whole, whatever the merges say.
    if (auto it = vocab_.find(piece); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = piece.size() < WordCache::kMaxWordBytes;
  if (cacheable && cache_.lookup(piece, ids)) return;
  const size_t first = ids.size();
  merge_word(piece, ids);
  if (cacheable) cache_.store(piece, std::span<const int32_t>(ids).subspan(first));
}

void BpeModel::merge_word(std::string_view piece, std::vector<int32_t>& ids) const {
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  const auto add = [&](int32_t id, uint32_t len) {
    const auto index = static_cast<int32_t>(symbols.size());
    if (index > 0) symbols.back().next = index;
    symbols.push_back({id, index - 1, -1, len});
  };
  // A run of unknown characters waiting to be emitted (fused when fuse_unk).
  bool unk_pending = false;
  int32_t unk_token_id = -1;
  uint32_t unk_len = 0;
  std::string decorated;
  for (size_t pos = 0; pos < piece.size();) {
    const uint32_t len = utf8::decode(piece, pos).len;
    const bool is_first = pos == 0;
    const bool is_last = pos + len >= piece.size();
    std::string_view s = piece.substr(pos, len);
    pos += len;
    if ((!is_first && !prefix_.empty()) || (is_last && !suffix_.empty())) {
      decorated.assign(is_first ? "" : prefix_).append(s);
      if (is_last) decorated += suffix_;
      s = decorated;
    }
    if (auto it = vocab_.find(s); it != vocab_.end()) {
      if (unk_pending) add(unk_token_id, unk_len), unk_pending = false;
      add(it->second, len);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (char c : s) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        // Hugging Face does not flush a pending unk here; it lands after these bytes.
        for (char c : s) add(byte_ids_[static_cast<uint8_t>(c)], 1);
        continue;
      }
    }
    if (unk_token_) {
      if (unk_pending && fuse_unk_) {
        unk_len += len;
      } else {
        if (unk_pending) add(unk_token_id, unk_len);
        unk_pending = true, unk_token_id = unk_id(), unk_len = len;
      }
    }
    // Without an unk token an unknown character is dropped, as Hugging Face does.
  }
  if (unk_pending) add(unk_token_id, unk_len);
  merge_all(symbols);
  for (const Symbol& s : symbols) {
    if (s.len != 0) ids.push_back(s.id);
  }
}

void BpeModel::merge_all(std::vector<Symbol>& symbols) const {
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    // priority_queue pops the largest: make that the lowest rank, then the leftmost.
    bool operator<(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  if (symbols.size() < 2) return;
  std::vector<Candidate> storage;
  storage.reserve(symbols.size() * 2);
  std::priority_queue<Candidate> queue(std::less<Candidate>(), std::move(storage));
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const auto* m = merges_.find(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (left.len == 0 || left.next == -1) continue;
    const int32_t next_pos = left.next;
    const Symbol right = symbols[static_cast<size_t>(next_pos)];
    // Skip entries made stale by an earlier merge of either side.
    const auto* current = merges_.find(left.id, right.id);
    if (!current || current->new_id != top.new_id) continue;

    left.id = top.new_id;
    left.len += right.len;
    left.next = right.next;
    symbols[static_cast<size_t>(next_pos)].len = 0;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;

    if (left.prev >= 0) {
      const Symbol& prev = symbols[static_cast<size_t>(left.prev)];
      if (const auto* m = merges_.find(prev.id, left.id)) {
        queue.push({m->rank, left.prev, m->new_id});
      }
    }
    if (left.next >= 0) {
      if (const auto* m = merges_.find(left.id, symbols[static_cast<size_t>(left.next)].id)) {
        queue.push({m->rank, top.pos, m->new_id});
      }
    }
  }
}

}  // namespace

std::unique_ptr<Model> make_model(const JsonNode& node) {
  node.expect_object();
  // Files written by early tokenizers versions have no model type; BPE is the one with merges.
  const bool untyped_bpe = !node.find("type") && node.find("merges");
  const std::string type = untyped_bpe ? "BPE" : node.at("type").as_string();
  if (type == "BPE") return std::make_unique<BpeModel>(node);
  node.unsupported_type(type, "BPE");
}

}  // namespace tandem::tokenizer
