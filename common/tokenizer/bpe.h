// The byte-pair-encoding model: a vocabulary of byte strings and the ranked merges that build
// them. Encoding one pre-tokenized word starts from its single bytes and repeatedly merges the
// adjacent pair of lowest rank (leftmost first on a tie), exactly as Hugging Face `tokenizers`
// does. Tokens are kept as raw bytes (converted from the byte-level alphabet once at load).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/merge_table.h"
#include "nlohmann/json_fwd.hpp"

namespace lp::tok {

class BpeModel {
 public:
  // From tokenizer.json's "model" object (type "BPE", byte-level vocabulary).
  static absl::StatusOr<BpeModel> FromJson(const nlohmann::json& model);

  // Appends the ids of `word` (raw bytes, non-empty) to `out`.
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

  // The raw bytes of `id`, or nullptr for an id outside the vocabulary.
  const std::string* TokenBytes(int32_t id) const {
    return id >= 0 && size_t(id) < id_to_bytes_.size() && has_id_[id] ? &id_to_bytes_[id] : nullptr;
  }
  // The id of a vocabulary entry given as raw bytes.
  std::optional<int32_t> IdOfBytes(std::string_view bytes) const;
  int32_t max_id() const { return int32_t(id_to_bytes_.size()) - 1; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  // Rank and result of merging ids a and b; rank is kNoMerge when the pair has no merge.
  Merge Lookup(int32_t a, int32_t b) const {
    int32_t rank = merges_.Rank(a, b);
    return rank == kNoMerge ? Merge{kNoMerge, -1} : Merge{rank, merged_by_rank_[rank]};
  }
  // The same for two single bytes, from the dense table.
  Merge LookupBytes(unsigned char a, unsigned char b) const { return byte_pairs_[a * 256 + b]; }
  void MergeShort(std::string_view word, std::vector<int32_t>* out) const;
  void MergeLong(std::string_view word, std::vector<int32_t>* out) const;

  static constexpr int32_t kNoMerge = MergeTable::kNone;
  // Words up to this many bytes merge in a flat array (a linear scan for the best pair beats a
  // heap at this size); longer ones (a long run of CJK or one character) use a heap.
  static constexpr size_t kShortWord = 128;

  absl::flat_hash_map<std::string, int32_t> vocab_;  // raw bytes -> id
  MergeTable merges_;                                // (left id, right id) -> rank
  std::vector<int32_t> merged_by_rank_;              // rank -> id of the merged token
  std::vector<Merge> byte_pairs_;                    // 256 x 256: merges of two bytes
  std::array<int32_t, 256> byte_id_{};               // single byte -> id
  std::vector<std::string> id_to_bytes_;
  std::vector<bool> has_id_;
  bool ignore_merges_ = false;  // tokenizer.json's "ignore_merges": whole words first
};

}  // namespace lp::tok
