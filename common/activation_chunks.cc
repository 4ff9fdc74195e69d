// Activations in pieces (see activation_chunks.h).
#include "common/activation_chunks.h"

#include <cstring>

namespace lp {

void ChunkAssembler::Reset(size_t max_bytes) {
  bytes_.clear();
  max_bytes_ = max_bytes;
  state_ = State::kPartial;
}

ChunkAssembler::State ChunkAssembler::Add(std::string_view piece, bool last) {
  if (state_ != State::kPartial) return state_;
  bytes_ += piece;
  if (bytes_.size() > max_bytes_) {
    state_ = State::kTooLarge;
  } else if (last) {
    state_ = State::kComplete;
  }
  return state_;
}

absl::Status ChunkAssembler::Floats(std::vector<float>* out) const {
  if (bytes_.size() % sizeof(float) != 0) {
    return absl::InvalidArgumentError("hidden state is not a whole number of float32 values");
  }
  out->resize(bytes_.size() / sizeof(float));
  if (!bytes_.empty()) std::memcpy(out->data(), bytes_.data(), bytes_.size());
  return absl::OkStatus();
}

}  // namespace lp
