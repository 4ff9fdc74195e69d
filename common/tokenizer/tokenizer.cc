// Loading tokenizer.json, and the encode / decode pipeline (see tokenizer.h).
#include "common/tokenizer/tokenizer.h"

#include <algorithm>
#include <deque>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/normalizer.h"
#include "nlohmann/json.hpp"

namespace lp {
namespace {

// GPT-2's split, used when tokenizer.json asks ByteLevel itself to split (use_regex: true).
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

absl::StatusOr<bool> ParseNormalizer(const nlohmann::json& n) {
  if (n.is_null()) return false;
  std::string type = n.value("type", "");
  if (type == "NFC") return true;
  if (type == "Sequence" && n["normalizers"].is_array()) {
    bool nfc = false;
    for (const auto& step : n["normalizers"]) {
      ASSIGN_OR_RETURN(bool step_nfc, ParseNormalizer(step));
      nfc = nfc || step_nfc;
      if (!step_nfc) return absl::UnimplementedError("tokenizer.json: unsupported normalizer");
    }
    return nfc;
  }
  return absl::UnimplementedError(
      absl::StrCat("tokenizer.json: normalizer '", type, "' is not supported (NFC only)"));
}

// The split regex: Qwen's Sequence [Split (Isolated), ByteLevel (no regex)], or GPT-2's ByteLevel
// that splits by itself. Other pre-tokenizers are not byte-level BPE as Qwen uses it.
absl::StatusOr<std::string> ParsePreTokenizer(const nlohmann::json& p) {
  std::string type = p.value("type", "");
  if (type == "ByteLevel") {
    if (p.value("add_prefix_space", false)) {
      return absl::UnimplementedError(
          "tokenizer.json: ByteLevel add_prefix_space is not supported");
    }
    if (p.value("use_regex", true)) return std::string(kGpt2Pattern);
    return std::string();
  }
  if (type == "Split") {
    if (!p["pattern"].contains("Regex") || p.value("behavior", "") != "Isolated" ||
        p.value("invert", false)) {
      return absl::UnimplementedError(
          "tokenizer.json: only a Split by Regex with behavior Isolated is supported");
    }
    return p["pattern"]["Regex"].get<std::string>();
  }
  if (type == "Sequence" && p["pretokenizers"].is_array()) {
    std::string pattern;
    for (const auto& step : p["pretokenizers"]) {
      ASSIGN_OR_RETURN(std::string step_pattern, ParsePreTokenizer(step));
      if (step_pattern.empty()) continue;
      if (!pattern.empty()) {
        return absl::UnimplementedError("tokenizer.json: more than one splitting regex");
      }
      pattern = std::move(step_pattern);
    }
    return pattern;
  }
  return absl::UnimplementedError(
      absl::StrCat("tokenizer.json: pre-tokenizer '", type, "' is not supported"));
}

}  // namespace

struct Tokenizer::WordCache {
  // Views into the text being encoded (or into `owned`), each mapped to where its ids were first
  // written in the output: a repeated word costs a hash lookup and a copy instead of BPE.
  absl::flat_hash_map<absl::string_view, std::pair<uint32_t, uint32_t>> words;
  std::deque<std::string> owned;  // normalized copies that cached views point into
  static constexpr size_t kMaxWords = 1 << 16;
};

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_dir) {
  std::string path = model_dir + "/tokenizer.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  auto tokenizer = FromJson(ss.str());
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("not valid JSON");
  std::unique_ptr<Tokenizer> t(new Tokenizer);
  // A key of the wrong type (`"model": []`) throws from json::value: an error, not a crash.
  try {
    ASSIGN_OR_RETURN(t->bpe_, tok::BpeModel::FromJson(j["model"]));
    ASSIGN_OR_RETURN(t->nfc_, ParseNormalizer(j["normalizer"]));
    ASSIGN_OR_RETURN(std::string pattern, ParsePreTokenizer(j["pre_tokenizer"]));
    if (pattern.empty()) return absl::UnimplementedError("tokenizer.json: no splitting regex");
    ASSIGN_OR_RETURN(t->pretokenizer_, tok::Pretokenizer::Create(pattern));

    int64_t max_id = t->bpe_.max_id();
    for (const auto& a : j["added_tokens"]) {
      std::string content = a.value("content", "");
      if (content.empty() || !a["id"].is_number_integer()) {
        return absl::InvalidArgumentError("tokenizer.json: bad added token");
      }
      if (a.value("lstrip", false) || a.value("rstrip", false) || a.value("single_word", false)) {
        return absl::UnimplementedError(absl::StrCat("tokenizer.json: added token '", content,
                                                     "' uses lstrip/rstrip/single_word"));
      }
      // Like `tokenizers`' ByteLevel decoder: mapped through the alphabet when every character is
      // in it (all of Qwen's are ASCII and map to themselves), else the text as is.
      std::string decoded = tok::ByteLevelToBytes(content).value_or(content);
      t->added_.push_back({std::move(content), std::move(decoded), a["id"].get<int32_t>()});
      max_id = std::max<int64_t>(max_id, t->added_.back().id);
    }
    // Longest first, so that the first match at a position is the longest (leftmost-longest).
    std::stable_sort(t->added_.begin(), t->added_.end(), [](const auto& x, const auto& y) {
      return x.content.size() > y.content.size();
    });
    for (size_t i = 0; i < t->added_.size(); ++i) {
      t->added_by_id_.try_emplace(t->added_[i].id, i);
      t->added_first_byte_[static_cast<unsigned char>(t->added_[i].content[0])] = true;
    }
    t->vocab_size_ = max_id + 1;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
  return t;
}

const Tokenizer::AddedToken* Tokenizer::MatchAdded(std::string_view text, size_t pos) const {
  std::string_view rest = text.substr(pos);
  for (const AddedToken& a : added_) {
    if (rest.starts_with(a.content)) return &a;
  }
  return nullptr;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 8);
  WordCache cache;
  size_t start = 0;  // start of the ordinary text not yet encoded
  for (size_t pos = 0; pos < text.size(); ++pos) {
    if (!added_first_byte_[static_cast<unsigned char>(text[pos])]) continue;
    const AddedToken* a = MatchAdded(text, pos);
    if (a == nullptr) continue;
    EncodeOrdinary(text.substr(start, pos - start), &cache, &out);
    out.push_back(a->id);
    pos += a->content.size() - 1;
    start = pos + 1;
  }
  EncodeOrdinary(text.substr(start), &cache, &out);
  return out;
}

void Tokenizer::EncodeOrdinary(std::string_view text, WordCache* cache,
                               std::vector<int32_t>* out) const {
  if (text.empty()) return;
  // The quick check also proves the text is valid UTF-8, which the regex requires.
  if (tok::IsKnownNfc(text)) return EncodeNormalized(text, cache, out);
  std::string fixed;
  if (nfc_) {
    fixed = tok::NormalizeNfc(text);
  } else {
    tok::AppendUtf8Lossy(text, /*hold_incomplete=*/false, &fixed);
  }
  cache->owned.push_back(std::move(fixed));
  EncodeNormalized(cache->owned.back(), cache, out);
}

void Tokenizer::EncodeNormalized(std::string_view text, WordCache* cache,
                                 std::vector<int32_t>* out) const {
  pretokenizer_->Split(text, [&](std::string_view word) {
    if (word.size() == 1) return bpe_.EncodeWord(word, out);
    absl::string_view key(word.data(), word.size());
    auto it = cache->words.find(key);
    if (it != cache->words.end()) {
      auto [begin, count] = it->second;
      for (uint32_t k = 0; k < count; ++k) out->push_back((*out)[begin + k]);
      return;
    }
    size_t begin = out->size();
    bpe_.EncodeWord(word, out);
    if (cache->words.size() < WordCache::kMaxWords) {
      cache->words.emplace(key, std::make_pair(uint32_t(begin), uint32_t(out->size() - begin)));
    }
  });
}

void Tokenizer::AppendTokenBytes(int32_t id, std::string* out) const {
  if (const std::string* bytes = bpe_.TokenBytes(id)) {
    out->append(*bytes);
    return;
  }
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) out->append(added_[it->second].decoded);
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string bytes;
  for (int32_t id : ids) AppendTokenBytes(id, &bytes);
  std::string text;
  text.reserve(bytes.size());
  tok::AppendUtf8Lossy(bytes, /*hold_incomplete=*/false, &text);
  return text;
}

std::optional<int32_t> Tokenizer::TokenId(std::string_view token) const {
  for (const AddedToken& a : added_) {
    if (a.content == token) return a.id;
  }
  std::optional<std::string> bytes = tok::ByteLevelToBytes(token);
  if (!bytes) return std::nullopt;
  return bpe_.IdOfBytes(*bytes);
}

}  // namespace lp
