// Qwen2 / Qwen3 text tokenizer: loads a model directory's tokenizer.json and encodes and decodes
// exactly as Hugging Face `tokenizers` does for it (no special tokens added around the text).
//
// Encode: added and special tokens (`<|im_start|>`, `<think>`, ...) are found in the raw text
// first (leftmost, longest); each stretch between them is NFC-normalized, split by the
// pre-tokenizer regex, and each piece's bytes are byte-pair encoded. Decode: the tokens' bytes
// joined, invalid UTF-8 shown as U+FFFD. Immutable after Load, so one instance may serve every
// thread. Used by the coordinator, never by workers.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/bpe.h"
#include "common/tokenizer/pretokenizer.h"

namespace lp {

class Tokenizer {
 public:
  // Reads `model_dir`/tokenizer.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_dir);
  // The same from tokenizer.json's text (tests, tools).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text);

  // Token ids of `text`; special tokens written in the text are matched. Invalid UTF-8 is
  // encoded as if each bad sequence were U+FFFD.
  std::vector<int32_t> Encode(std::string_view text) const;
  // The text of `ids`, special tokens included; ids outside the vocabulary are skipped.
  std::string Decode(std::span<const int32_t> ids) const;
  // Appends the raw bytes of one token (no UTF-8 repair): what streaming decoding builds on.
  void AppendTokenBytes(int32_t id, std::string* out) const;

  // One past the largest id, added tokens included (`len(tokenizer)` in `transformers`).
  int64_t vocab_size() const { return vocab_size_; }
  // The id of a token as tokenizer.json writes it: an added token ("<|im_end|>") or a vocabulary
  // entry in the byte-level alphabet ("Ġthe" is " the").
  std::optional<int32_t> TokenId(std::string_view token) const;

 private:
  struct AddedToken {
    std::string content;
    std::string decoded;  // what Decode writes: through the byte-level alphabet when it can
    int32_t id;
  };
  // Per-call memo of words already encoded: offsets into the output being built.
  struct WordCache;

  Tokenizer() = default;
  void EncodeOrdinary(std::string_view text, WordCache* cache, std::vector<int32_t>* out) const;
  void EncodeNormalized(std::string_view text, WordCache* cache, std::vector<int32_t>* out) const;
  // The added token that starts at text[pos] (longest first), if any.
  const AddedToken* MatchAdded(std::string_view text, size_t pos) const;

  tok::BpeModel bpe_;
  std::unique_ptr<tok::Pretokenizer> pretokenizer_;
  bool nfc_ = false;
  std::vector<AddedToken> added_;  // longest content first
  absl::flat_hash_map<int32_t, size_t> added_by_id_;
  std::array<bool, 256> added_first_byte_{};
  int64_t vocab_size_ = 0;
};

}  // namespace lp
