// Parsing and printing a device (see device.h).
#include "common/device.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

#include "absl/strings/str_cat.h"

namespace lp {

absl::StatusOr<Device> Device::Parse(const std::string& text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a device (cuda:N, cpu:N, or an integer N for cuda:N)"));
  };
  if (text == "disk" || text == "meta") {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "': layerpipe keeps every module on a worker's device, it does not offload"));
  }
  std::string kind = text, index = "0";
  if (const size_t colon = text.find(':'); colon != std::string::npos) {
    kind = text.substr(0, colon);
    index = text.substr(colon + 1);
  } else if (!text.empty() && std::all_of(text.begin(), text.end(),
                                          [](unsigned char ch) { return std::isdigit(ch); })) {
    kind = "cuda";
    index = text;
  }
  if (kind != "cuda" && kind != "cpu") return bad();
  int n = -1;
  auto [end, ec] = std::from_chars(index.data(), index.data() + index.size(), n);
  if (index.empty() || ec != std::errc() || end != index.data() + index.size() || n < 0)
    return bad();
  return Device{kind == "cuda" ? Kind::kCuda : Kind::kCpu, n};
}

std::string Device::ToString() const { return absl::StrCat(cuda() ? "cuda:" : "cpu:", index); }

bool IsCudaDevice(const std::string& text) {
  auto d = Device::Parse(text);
  return d.ok() && d->cuda();
}

}  // namespace lp
