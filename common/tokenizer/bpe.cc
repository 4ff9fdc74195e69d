// Byte-pair encoding of one word (see bpe.h).
#include "common/tokenizer/bpe.h"

#include <cstring>
#include <queue>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/tokenizer/byte_level.h"
#include "nlohmann/json.hpp"

namespace lp::tok {
namespace {

// A merge in tokenizer.json is "left right" (older files) or ["left", "right"].
absl::StatusOr<std::pair<std::string, std::string>> MergeParts(const nlohmann::json& m) {
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return std::make_pair(m[0].get<std::string>(), m[1].get<std::string>());
  }
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    size_t space = s.find(' ');
    if (space != std::string::npos && space > 0 && space + 1 < s.size() &&
        s.find(' ', space + 1) == std::string::npos) {
      return std::make_pair(s.substr(0, space), s.substr(space + 1));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("bad merge entry ", m.dump()));
}

}  // namespace

absl::StatusOr<BpeModel> BpeModel::FromJson(const nlohmann::json& model) {
  if (model.value("type", "") != "BPE") {
    return absl::UnimplementedError("tokenizer.json: model.type is not BPE");
  }
  if (model.value("byte_fallback", false) ||
      !model.value("continuing_subword_prefix", "").empty() ||
      !model.value("end_of_word_suffix", "").empty() || !model["dropout"].is_null()) {
    return absl::UnimplementedError(
        "tokenizer.json: BPE options other than byte-level (byte_fallback, subword prefix or "
        "suffix, dropout) are not supported");
  }
  BpeModel bpe;
  bpe.ignore_merges_ = model.value("ignore_merges", false);
  const nlohmann::json& vocab = model["vocab"];
  if (!vocab.is_object()) return absl::InvalidArgumentError("tokenizer.json: no model.vocab");
  int32_t max_id = -1;
  bpe.vocab_.reserve(vocab.size());
  for (const auto& [token, id_json] : vocab.items()) {
    std::optional<std::string> bytes = ByteLevelToBytes(token);
    if (!bytes || !id_json.is_number_integer() || id_json.get<int64_t>() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: vocabulary entry '", token, "' is not byte-level"));
    }
    int32_t id = id_json.get<int32_t>();
    max_id = std::max(max_id, id);
    bpe.vocab_.emplace(std::move(*bytes), id);
  }
  bpe.id_to_bytes_.resize(size_t(max_id + 1));
  bpe.has_id_.assign(size_t(max_id + 1), false);
  for (const auto& [bytes, id] : bpe.vocab_) {
    bpe.id_to_bytes_[id] = bytes;
    bpe.has_id_[id] = true;
  }
  for (int b = 0; b < 256; ++b) {
    auto id = bpe.IdOfBytes(std::string(1, char(b)));
    if (!id) return absl::InvalidArgumentError(absl::StrCat("vocabulary lacks byte ", b));
    bpe.byte_id_[b] = *id;
  }
  const nlohmann::json& merges = model["merges"];
  if (!merges.is_array()) return absl::InvalidArgumentError("tokenizer.json: no model.merges");
  if (merges.size() >= (size_t(1) << MergeTable::kRankBits) ||
      max_id >= (int32_t(1) << MergeTable::kIdBits)) {
    return absl::UnimplementedError("tokenizer.json: vocabulary or merge list too large");
  }
  bpe.merges_ = MergeTable(merges.size());
  bpe.merged_by_rank_.resize(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    ASSIGN_OR_RETURN(auto parts, MergeParts(merges[rank]));
    auto left = ByteLevelToBytes(parts.first), right = ByteLevelToBytes(parts.second);
    std::optional<int32_t> a, b, ab;
    if (left && right) {
      a = bpe.IdOfBytes(*left);
      b = bpe.IdOfBytes(*right);
      ab = bpe.IdOfBytes(*left + *right);
    }
    if (!a || !b || !ab) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: merge ", rank, " (",
                                                     merges[rank].dump(),
                                                     ") names tokens not in the vocabulary"));
    }
    bpe.merges_.Insert(*a, *b, int32_t(rank));
    bpe.merged_by_rank_[rank] = *ab;
  }
  bpe.byte_pairs_.resize(256 * 256);
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b)
      bpe.byte_pairs_[a * 256 + b] = bpe.Lookup(bpe.byte_id_[a], bpe.byte_id_[b]);
  }
  return bpe;
}

std::optional<int32_t> BpeModel::IdOfBytes(std::string_view bytes) const {
  auto it = vocab_.find(absl::string_view(bytes.data(), bytes.size()));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (word.size() == 1) {
    out->push_back(byte_id_[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (ignore_merges_) {
    if (auto id = IdOfBytes(word)) {
      out->push_back(*id);
      return;
    }
  }
  if (word.size() <= kShortWord) {
    MergeShort(word, out);
  } else {
    MergeLong(word, out);
  }
}

// Flat arrays: ids[i] and rank[i], the rank of merging (i, i+1). Each step finds the lowest rank
// (a min reduction the compiler vectorizes, then the first index holding it: the leftmost),
// merges, and closes the gap.
void BpeModel::MergeShort(std::string_view word, std::vector<int32_t>* out) const {
  int32_t ids[kShortWord];
  int32_t rank[kShortWord];
  size_t n = word.size();
  const auto* bytes = reinterpret_cast<const unsigned char*>(word.data());
  for (size_t i = 0; i < n; ++i) ids[i] = byte_id_[bytes[i]];
  for (size_t i = 0; i + 1 < n; ++i) rank[i] = LookupBytes(bytes[i], bytes[i + 1]).rank;
  while (n > 1) {
    int32_t low = kNoMerge;
    for (size_t i = 0; i + 1 < n; ++i) low = std::min(low, rank[i]);
    if (low == kNoMerge) break;
    size_t best = 0;
    while (rank[best] != low) ++best;
    ids[best] = merged_by_rank_[low];
    size_t tail = n - best - 2;  // symbols after best + 1
    std::memmove(&ids[best + 1], &ids[best + 2], tail * sizeof(int32_t));
    std::memmove(&rank[best + 1], &rank[best + 2], (tail > 0 ? tail - 1 : 0) * sizeof(int32_t));
    --n;
    if (best + 1 < n) rank[best] = merges_.Rank(ids[best], ids[best + 1]);
    if (best > 0) rank[best - 1] = merges_.Rank(ids[best - 1], ids[best]);
  }
  out->insert(out->end(), ids, ids + n);
}

// Doubly linked symbols and a min-heap of candidate merges keyed by (rank, position); stale
// entries (a side already merged away) are recognised when popped, as `tokenizers` does.
void BpeModel::MergeLong(std::string_view word, std::vector<int32_t>* out) const {
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t merged_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  const int32_t n = int32_t(word.size());
  std::vector<int32_t> ids(n), prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    ids[i] = byte_id_[static_cast<unsigned char>(word[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  std::vector<Candidate> storage;
  storage.reserve(size_t(n));
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap(std::greater<>(),
                                                                              std::move(storage));
  auto push = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    Merge m = Lookup(ids[left], ids[next[left]]);
    if (m.rank != kNoMerge) heap.push({m.rank, left, m.merged_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<bool> alive(size_t(n), true);
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    if (!alive[c.pos] || next[c.pos] < 0) continue;
    int32_t right = next[c.pos];
    Merge now = Lookup(ids[c.pos], ids[right]);
    if (now.rank != c.rank || now.merged_id != c.merged_id) continue;  // stale
    ids[c.pos] = c.merged_id;
    alive[right] = false;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out->push_back(ids[i]);
}

}  // namespace lp::tok
