// The safetensors parser on hand-made images: every rule of the format's reference
// implementation, and round trips through the writer.
#include "common/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/safetensors_writer.h"

namespace lp {
namespace {

std::vector<uint8_t> Image(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

absl::Status ParseStatus(const std::string& header, size_t data_bytes) {
  auto img = Image(header, data_bytes);
  return SafetensorsFile::Parse(img.data(), img.size()).status();
}

TEST(Safetensors, AcceptsAWellFormedImage) {
  auto img = Image(R"({"__metadata__":{"format":"pt"},)"
                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
                   R"("a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})",
                   12);
  auto h = SafetensorsFile::Parse(img.data(), img.size());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->tensors.size(), 2u);
  EXPECT_EQ(h->metadata.at("format"), "pt");
  EXPECT_EQ(h->tensors.at("b").begin, 4u);
}

TEST(Safetensors, AcceptsScalarsAndEmptyTensors) {
  EXPECT_TRUE(ParseStatus(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                          R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}})",
                          4)
                  .ok());
}

TEST(Safetensors, RejectsEachDefect) {
  struct Case {
    std::string header;
    size_t data;
    std::string message;
  } cases[] = {
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
       20, "hole"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, "overlapping"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 16, "padded"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, "truncated"},
      {R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8, "unknown dtype"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "span"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
       "overflows"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "negative"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "end before"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, "two non-negative"},
      {R"({"a":{"dtype":"F32","shape":[2]}})", 8, "needs dtype"},
      {R"({"__metadata__":{"x":1}})", 0, "not a string"},
      {R"({"a":)", 0, "JSON"},
      {R"([1,2])", 0, "'{'"},
  };
  for (const auto& c : cases) {
    auto s = ParseStatus(c.header, c.data);
    ASSERT_FALSE(s.ok()) << c.header;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << c.header << " -> " << s;
  }
}

TEST(Safetensors, RejectsBadHeaderLengths) {
  std::vector<uint8_t> empty;
  EXPECT_FALSE(SafetensorsFile::Parse(empty.data(), 0).ok());
  auto img = Image("{}", 0);
  uint64_t huge = 1ull << 62;
  std::memcpy(img.data(), &huge, 8);
  EXPECT_NE(SafetensorsFile::Parse(img.data(), img.size()).status().message().find("100 MB"),
            std::string::npos);
  uint64_t past = 100;
  std::memcpy(img.data(), &past, 8);
  EXPECT_NE(SafetensorsFile::Parse(img.data(), img.size()).status().message().find("past the end"),
            std::string::npos);
}

TEST(Safetensors, WriterOutputReadsBack) {
  const std::string path = ::testing::TempDir() + "/lp_writer_test.safetensors";
  TensorToWrite t{"w", DType::kBF16, {3, 5}, [](uint64_t first, uint64_t count, void* out) {
                    for (uint64_t i = 0; i < count; ++i) {
                      static_cast<uint16_t*>(out)[i] = F32ToBf16(float(first + i));
                    }
                  }};
  ASSERT_TRUE(WriteSafetensors(path, {t}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  TensorView v = (*file)->Find("w");
  ASSERT_NE(v.info, nullptr);
  EXPECT_EQ(v.info->shape, (std::vector<int64_t>{3, 5}));
  std::vector<float> f(15);
  ConvertToF32(DType::kBF16, v.data, f.data(), 15);
  EXPECT_EQ(f[14], 14.0f);
  std::filesystem::remove(path);
}

TEST(DType, HalfConversionsRoundTrip) {
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f}) {
    EXPECT_EQ(F16ToF32(F32ToF16(v)), v);
    EXPECT_EQ(Bf16ToF32(F32ToBf16(v)), Bf16ToF32(F32ToBf16(v)));
  }
  EXPECT_EQ(Bf16ToF32(F32ToBf16(1.0f)), 1.0f);
  EXPECT_EQ(F32ToBf16(1.00390625f), F32ToBf16(1.0f));  // ties to even
}

}  // namespace
}  // namespace lp
