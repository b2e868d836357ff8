#include "tokenizer/sentencepiece_model.h"

#include <sentencepiece_processor.h>

#include "base/error.h"

namespace tandem::tokenizer {

SentencePieceModel::SentencePieceModel(std::string_view serialized, std::string source_name)
    : source_(std::move(source_name)), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = sp_->LoadFromSerializedProto(serialized);
  if (!status.ok()) {
    throw Error(source_ + ": not a SentencePiece model: " + status.ToString());
  }
  if (sp_->GetPieceSize() <= 0) throw Error(source_ + ": SentencePiece model has no pieces");
}

SentencePieceModel::~SentencePieceModel() = default;

std::vector<int32_t> SentencePieceModel::encode(std::string_view text,
                                                bool add_special_tokens) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw Error(source_ + ": encode failed: " + status.ToString());
  std::vector<int32_t> out;
  out.reserve(ids.size() + 1);
  if (add_special_tokens && sp_->bos_id() >= 0) out.push_back(sp_->bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

std::string SentencePieceModel::decode(std::span<const int32_t> ids,
                                       bool skip_special_tokens) const {
  std::vector<int> kept;
  kept.reserve(ids.size());
  const int32_t n = vocab_size();
  for (int32_t id : ids) {
    // sentencepiece reports a bad id as a failed status for the whole call; name the id instead.
    if (id < 0 || id >= n) {
      throw Error(source_ + ": cannot decode token id " + std::to_string(id) +
                  ": outside the vocabulary [0, " + std::to_string(n) + ")");
    }
    if (skip_special_tokens && is_special(id)) continue;
    kept.push_back(id);
  }
  std::string text;
  const auto status = sp_->Decode(kept, &text);
  if (!status.ok()) throw Error(source_ + ": decode failed: " + status.ToString());
  return text;
}

int32_t SentencePieceModel::vocab_size() const {
  return sp_->GetPieceSize();
}

std::optional<int32_t> SentencePieceModel::token_to_id(std::string_view token) const {
  // PieceToId answers unk_id for unknown pieces; only a round trip tells them apart.
  const int id = sp_->PieceToId(token);
  if (id < 0 || sp_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

std::optional<std::string> SentencePieceModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return std::nullopt;
  return sp_->IdToPiece(id);
}

bool SentencePieceModel::is_special(int32_t id) const {
  // Hugging Face's special tokens for these models are exactly unk, bos and eos.
  return id >= 0 && id < vocab_size() && (sp_->IsControl(id) || sp_->IsUnknown(id));
}

}  // namespace tandem::tokenizer
