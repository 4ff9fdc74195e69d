// Reading a fuzzer's bytes as the values of a structured message (the worker's steps): small
// values most of the time, so that mutations land near the limits that matter, and now and
// then a raw 32-bit value or a float that is NaN, infinite or tiny. Past the end every read
// gives zero.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace lp::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  // -8..231 from one byte; a byte of 0xf0 or more is followed by a raw int32.
  int32_t Int() {
    const uint8_t b = Byte();
    if (b < 0xf0) return int32_t(b) - 8;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(Byte()) << (8 * i);
    return int32_t(v);
  }
  // One of a few values that break arithmetic, a small one, or a raw float.
  float Float() {
    constexpr float kSpecial[] = {0.0f,
                                  1.0f,
                                  -1.0f,
                                  0.5f,
                                  2.0f,
                                  std::numeric_limits<float>::quiet_NaN(),
                                  std::numeric_limits<float>::infinity(),
                                  -std::numeric_limits<float>::infinity(),
                                  std::numeric_limits<float>::denorm_min(),
                                  std::numeric_limits<float>::max(),
                                  1e-3f,
                                  100.0f};
    constexpr size_t kCount = sizeof(kSpecial) / sizeof(kSpecial[0]);
    const uint8_t b = Byte();
    if (b < kCount) return kSpecial[b];
    if (b < 0xf0) return float(b - 128) / 16.0f;
    uint32_t bits = 0;
    for (int i = 0; i < 4; ++i) bits |= uint32_t(Byte()) << (8 * i);
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace lp::fuzz
