// The BPE merge lookup, (left id, right id) -> rank, on the hot path of every encode. A flat
// open-addressing table of single 64-bit words (both ids and the rank packed in one): one probe
// usually touches one cache line, where a general hash map touches a control block and a slot.
// Byte pairs, which every word starts with, have their own dense table.
#pragma once

#include <cstdint>
#include <vector>

namespace lp::tok {

class MergeTable {
 public:
  static constexpr int kIdBits = 21;    // ids below 2M
  static constexpr int kRankBits = 22;  // up to 4M merges
  static constexpr int32_t kNone = INT32_MAX;

  explicit MergeTable(size_t num_merges = 0) {
    size_t capacity = 1024;
    while (capacity < num_merges * 3 / 2) capacity <<= 1;  // load factor at most 2/3
    slots_.assign(capacity, kEmpty);
    shift_ = 64;
    for (size_t c = capacity; c > 1; c >>= 1) --shift_;
  }

  // Records the merge of (a, b); a later insert of the same pair replaces the rank (as a
  // Rust HashMap collected from the merge list does in `tokenizers`). Ids and rank must fit.
  void Insert(int32_t a, int32_t b, int32_t rank) {
    uint64_t key = Key(a, b);
    for (size_t i = Slot(key);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i] == kEmpty) {
        slots_[i] = (key << kRankBits) | uint64_t(rank);
        return;
      }
      if ((slots_[i] >> kRankBits) == key) {
        slots_[i] = (key << kRankBits) | uint64_t(rank);
        return;
      }
    }
  }

  // The rank of merging (a, b), or kNone.
  int32_t Rank(int32_t a, int32_t b) const {
    uint64_t key = Key(a, b);
    for (size_t i = Slot(key);; i = (i + 1) & (slots_.size() - 1)) {
      uint64_t s = slots_[i];
      if (s == kEmpty) return kNone;
      if ((s >> kRankBits) == key) return int32_t(s & ((1u << kRankBits) - 1));
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t Key(int32_t a, int32_t b) { return (uint64_t(a) << kIdBits) | uint64_t(b); }
  size_t Slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> shift_); }

  std::vector<uint64_t> slots_;
  int shift_;
};

}  // namespace lp::tok
