// Byte sizes as people write them in a cluster file ("20GiB", "500MB", 1073741824) and as the
// planner prints them.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace lp {

inline constexpr uint64_t kKiB = 1ull << 10;
inline constexpr uint64_t kMiB = 1ull << 20;
inline constexpr uint64_t kGiB = 1ull << 30;

// Hugging Face's max_memory spellings: a plain byte count, or a number (decimals allowed) with
// a unit, case-insensitive, optional space: B, KiB/MiB/GiB/TiB (powers of 1024) and
// KB/MB/GB/TB (powers of 1000, as accelerate reads them).
absl::StatusOr<uint64_t> ParseByteSize(const std::string& text);

// "512 B", "3.50 MiB", "14.98 GiB": powers of 1024, two decimals.
std::string FormatBytes(uint64_t bytes);

}  // namespace lp
