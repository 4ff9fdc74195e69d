// Activations in pieces: a hidden state larger than gRPC's message limit crosses between the
// coordinator and a worker as several messages of at most kChunkBytes (common/protocol.h), the
// last one marked. Both ends split and reassemble with these, so the framing is tested without
// a network.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace lp {

// Calls `send(piece, last)` for each piece of at most `chunk_bytes` of `bytes`, in order (one
// empty piece when `bytes` is empty). Stops at the first `send` that returns false; returns
// whether every piece was sent.
template <typename Send>
bool ForEachChunk(std::string_view bytes, size_t chunk_bytes, Send&& send) {
  size_t sent = 0;
  do {
    const size_t n = std::min(chunk_bytes, bytes.size() - sent);
    const std::string_view piece = bytes.substr(sent, n);
    sent += n;
    if (!send(piece, sent == bytes.size())) return false;
  } while (sent < bytes.size());
  return true;
}

// Gathers one message's pieces until the last.
class ChunkAssembler {
 public:
  enum class State {
    kPartial,   // waiting for more pieces
    kComplete,  // the last piece came
    kTooLarge,  // more than max_bytes came: the peer cannot be resynchronized with
  };

  explicit ChunkAssembler(size_t max_bytes = std::numeric_limits<size_t>::max())
      : max_bytes_(max_bytes) {}

  // Starts the next message (the buffer's memory is kept).
  void Reset(size_t max_bytes = std::numeric_limits<size_t>::max());
  // Adds a piece; not called once the state is no longer kPartial.
  State Add(std::string_view piece, bool last);
  State state() const { return state_; }
  const std::string& bytes() const { return bytes_; }
  // The bytes as float32 values (little-endian, as the host's); INVALID_ARGUMENT when they are
  // not a whole number of them.
  absl::Status Floats(std::vector<float>* out) const;

 private:
  std::string bytes_;
  size_t max_bytes_;
  State state_ = State::kPartial;
};

}  // namespace lp
