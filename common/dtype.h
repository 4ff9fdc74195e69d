// Element types of checkpoint tensors and the conversions the backends need.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace lp {

enum class DType : uint8_t { kBF16, kF16, kF32, kF64, kI8, kU8, kI16, kI32, kI64, kBool };

// Size of one element in bytes.
size_t DTypeSize(DType t);
// The safetensors spelling ("BF16", "F32", ...).
std::string_view DTypeName(DType t);
// Parses a safetensors dtype name; nullopt for names we do not know.
std::optional<DType> ParseDType(std::string_view name);
// True for the types model weights may have (BF16, F16, F32).
bool IsFloatWeightType(DType t);

inline float Bf16ToF32(uint16_t v) {
  uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even, NaN preserved: what torch does for .to(bfloat16).
inline uint16_t F32ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float F16ToF32(uint16_t v);
uint16_t F32ToF16(float f);

// Converts `n` elements of a float type (BF16, F16, F32) to float32.
void ConvertToF32(DType src_type, const void* src, float* dst, size_t n);

}  // namespace lp
