// 4-bit checkpoints beyond the two reference fixtures: GPTQ with act order, one group per row,
// asymmetric zeros, the gptq_v2 format, shards, AWQ with a module left dense. Each model is
// written twice from the same random codes: packed as the format stores it (by this file's own
// packer, written from the format's description, not by common/int4.cc), and dense in float32
// with W = scale x (q - zero). Both must give the same logits and greedy tokens. Plus the
// format's packing undone by UnpackInt4 column by column, and bad quantized inputs refused with
// a clear message.
#include "common/int4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "common/checkpoint.h"
#include "common/safetensors_writer.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/local_chain.h"

namespace lp {
namespace {

namespace fs = std::filesystem;

// One packed linear, as the test draws it: codes[o][i], zeros[o][g], scales[o][g] (f16 bits),
// group[i] (GPTQ g_idx: any order, equal groups).
struct DrawnLinear {
  int64_t out = 0, in = 0, groups = 0;
  std::vector<uint8_t> codes, zeros;
  std::vector<uint16_t> scales;
  std::vector<int32_t> group;
  float W(int64_t o, int64_t i) const {
    const size_t g = size_t(o * groups + group[size_t(i)]);
    return F16ToF32(scales[g]) * float(int(codes[size_t(o * in + i)]) - int(zeros[g]));
  }
};

struct Variant {
  std::string name;
  std::string quant_json;  // config.json's quantization_config
  QuantMethod method;
  int64_t group_size;  // -1: one group
  bool act_order;
  bool v1_zeros;             // GPTQ v1: stored = zero - 1
  bool symmetric;            // every zero 8
  uint64_t shard_bytes;      // 0: one file
  std::string dense_module;  // modules_to_not_convert entry, or empty
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

std::vector<TensorToWrite> Tensors(
    const std::vector<std::pair<ExpectedTensor, std::vector<uint8_t>>>& ts) {
  std::vector<TensorToWrite> out;
  for (const auto& [t, bytes] : ts) {
    TensorToWrite w;
    w.name = t.name;
    w.dtype = t.dtype.value_or(DType::kF32);
    w.shape = t.shape;
    auto data = std::make_shared<std::vector<uint8_t>>(bytes);
    const size_t element = DTypeSize(w.dtype);
    w.fill = [data, element](uint64_t first, uint64_t count, void* dst) {
      std::memcpy(dst, data->data() + first * element, count * element);
    };
    out.push_back(std::move(w));
  }
  return out;
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// The format's own packing (see the fixtures' README), written independently of int4.cc.
std::vector<std::pair<ExpectedTensor, std::vector<uint8_t>>> Pack(const Variant& v,
                                                                  const std::string& name,
                                                                  const DrawnLinear& d) {
  const int64_t out = d.out, in = d.in, groups = d.groups;
  std::vector<uint32_t> qzeros(size_t(groups * out / 8), 0);
  std::vector<uint16_t> scales(size_t(groups * out));
  const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t c = 0; c < out / 8; ++c) {
      for (int k = 0; k < 8; ++k) {
        const int64_t o = 8 * c + (v.method == QuantMethod::kAwq ? awq_order[k] : k);
        const int zero = d.zeros[size_t(o * groups + g)] - (v.v1_zeros ? 1 : 0);
        qzeros[size_t(g * out / 8 + c)] |= uint32_t(zero) << (4 * k);
      }
    }
    for (int64_t o = 0; o < out; ++o)
      scales[size_t(g * out + o)] = d.scales[size_t(o * groups + g)];
  }
  std::vector<std::pair<ExpectedTensor, std::vector<uint8_t>>> t;
  if (v.method == QuantMethod::kAwq) {
    std::vector<uint32_t> qweight(size_t(in * out / 8), 0);
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t c = 0; c < out / 8; ++c) {
        for (int k = 0; k < 8; ++k) {
          const int64_t o = 8 * c + awq_order[k];
          qweight[size_t(i * out / 8 + c)] |= uint32_t(d.codes[size_t(o * in + i)]) << (4 * k);
        }
      }
    }
    t.push_back({{name + ".qweight", {in, out / 8}, DType::kI32}, Bytes(qweight)});
  } else {
    std::vector<uint32_t> qweight(size_t(in / 8 * out), 0);
    for (int64_t r = 0; r < in / 8; ++r) {
      for (int64_t o = 0; o < out; ++o) {
        for (int k = 0; k < 8; ++k) {
          qweight[size_t(r * out + o)] |= uint32_t(d.codes[size_t(o * in + 8 * r + k)]) << (4 * k);
        }
      }
    }
    t.push_back({{name + ".qweight", {in / 8, out}, DType::kI32}, Bytes(qweight)});
  }
  t.push_back({{name + ".qzeros", {groups, out / 8}, DType::kI32}, Bytes(qzeros)});
  t.push_back({{name + ".scales", {groups, out}, DType::kF16}, Bytes(scales)});
  if (v.method == QuantMethod::kGptq) {
    t.push_back({{name + ".g_idx", {in}, DType::kI32}, Bytes(d.group)});
  }
  return t;
}

DrawnLinear Draw(const Variant& v, int64_t out, int64_t in, std::mt19937& rng) {
  DrawnLinear d;
  d.out = out;
  d.in = in;
  const int64_t gs = v.group_size < 0 ? in : v.group_size;
  d.groups = in / gs;
  std::uniform_int_distribution<int> code(0, 15), zero(v.v1_zeros ? 1 : 0, v.v1_zeros ? 16 : 15);
  std::uniform_real_distribution<float> scale(0.002f, 0.01f);
  for (int64_t i = 0; i < out * in; ++i) d.codes.push_back(uint8_t(code(rng)));
  for (int64_t i = 0; i < out * d.groups; ++i) {
    d.zeros.push_back(uint8_t(v.symmetric ? 8 : zero(rng)));
    d.scales.push_back(F32ToF16(scale(rng)));
  }
  d.group.resize(size_t(in));
  std::vector<int32_t> order(static_cast<size_t>(in));
  std::iota(order.begin(), order.end(), 0);
  if (v.act_order) std::shuffle(order.begin(), order.end(), rng);
  for (int64_t j = 0; j < in; ++j) d.group[size_t(order[size_t(j)])] = int32_t(j / gs);
  return d;
}

// A small Qwen2 (q/k/v biases) written packed under `packed_dir` and dense under `dense_dir`.
void WriteModelPair(const Variant& v, const std::string& packed_dir, const std::string& dense_dir) {
  const std::string config_head = R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 300, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": false, "torch_dtype": "float32")";
  auto config = ParseModelConfig(config_head + ", \"quantization_config\": " + v.quant_json + "}");
  ASSERT_TRUE(config.ok()) << config.status();
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> small(-0.1f, 0.1f);
  std::vector<std::pair<ExpectedTensor, std::vector<uint8_t>>> packed, dense;
  auto add_float = [&](const ExpectedTensor& t, bool norm) {
    std::vector<float> values(size_t(NumElements({t})));
    for (auto& x : values) x = norm ? 1.0f + small(rng) : small(rng);
    packed.push_back({t, Bytes(values)});
    dense.push_back({t, Bytes(values)});
  };
  add_float(EmbedTensors(*config)[0], false);
  for (int64_t l = 0; l < config->num_layers; ++l) {
    for (const ExpectedTensor& t : LayerTensors(*config, l)) {
      if (!t.dtype && t.name.find("proj.weight") == std::string::npos) {
        add_float(t, t.name.find("norm") != std::string::npos);
      }
    }
    for (const LinearSpec& linear : LayerLinears(*config, l)) {
      EXPECT_EQ(linear.int4,
                v.dense_module.empty() || linear.name.find(v.dense_module) == std::string::npos);
      if (!linear.int4) {
        add_float({linear.name + ".weight", {linear.out, linear.in}}, false);
        continue;
      }
      const DrawnLinear d = Draw(v, linear.out, linear.in, rng);
      for (auto& t : Pack(v, linear.name, d)) packed.push_back(std::move(t));
      std::vector<float> w(size_t(linear.out * linear.in));
      for (int64_t o = 0; o < linear.out; ++o) {
        for (int64_t i = 0; i < linear.in; ++i) w[size_t(o * linear.in + i)] = d.W(o, i);
      }
      dense.push_back({{linear.name + ".weight", {linear.out, linear.in}}, Bytes(w)});
    }
  }
  add_float(NormTensors(*config)[0], true);
  add_float(HeadTensors(*config)[0], false);
  for (const auto& [dir, tensors, quantized] :
       {std::tuple{packed_dir, &packed, true}, std::tuple{dense_dir, &dense, false}}) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir + "/config.json")
        << config_head << (quantized ? ", \"quantization_config\": " + v.quant_json : "") << "}";
    if (quantized && v.shard_bytes > 0) {
      ASSERT_TRUE(WriteShardedCheckpoint(dir, Tensors(*tensors), v.shard_bytes).ok());
    } else {
      ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", Tensors(*tensors)).ok());
    }
  }
}

class Int4Variants : public ::testing::TestWithParam<Variant> {};

TEST_P(Int4Variants, PackedModelEqualsItsDequantizedTwin) {
  const Variant& v = GetParam();
  const std::string root =
      ::testing::TempDir() + "/lp_int4_" + std::to_string(getpid()) + "_" + v.name;
  WriteModelPair(v, root + "/packed", root + "/dense");
  auto packed = Checkpoint::Open(root + "/packed");
  auto dense = Checkpoint::Open(root + "/dense");
  ASSERT_TRUE(packed.ok()) << packed.status();
  ASSERT_TRUE(dense.ok()) << dense.status();
  auto summary = (*packed)->Validate();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->act_order_linears, v.act_order ? 14 : 0);
  if (v.shard_bytes > 0) EXPECT_GT(summary->files.size(), 1u);

  const std::vector<int32_t> prompt = {5, 17, 250, 3, 99, 42, 7};
  for (int64_t slices : {1, 2}) {
    SliceLimits limits{1, 64, 64};
    auto a =
        LocalChain::Load(**packed, EvenSlices(2, slices), limits, [] { return MakeCpuBackend(); });
    auto b =
        LocalChain::Load(**dense, EvenSlices(2, slices), limits, [] { return MakeCpuBackend(); });
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    StepLayout layout{{{0, 0, int32_t(prompt.size())}}};
    std::vector<float> la, lb;
    ASSERT_TRUE((*a)->Step(layout, prompt, &la).ok());
    ASSERT_TRUE((*b)->Step(layout, prompt, &lb).ok());
    ASSERT_EQ(la.size(), lb.size());
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < la.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(double(la[i]) - lb[i]));
      max_abs = std::max(max_abs, std::fabs(double(lb[i])));
    }
    EXPECT_LT(max_diff, 1e-5 * std::max(1.0, max_abs)) << slices << " slices";
    EXPECT_GT(max_abs, 1e-3) << "logits not all ~0: the model computes something";
    auto ga = (*a)->Greedy(prompt, 12, 0);
    auto gb = (*b)->Greedy(prompt, 12, 0);
    ASSERT_TRUE(ga.ok() && gb.ok());
    EXPECT_EQ(*ga, *gb) << slices << " slices";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, Int4Variants,
    ::testing::Values(
        Variant{"gptq_act_order", R"({"quant_method": "gptq", "bits": 4, "group_size": 16,
                "desc_act": true, "sym": true})",
                QuantMethod::kGptq, 16, true, true, true, 0, ""},
        Variant{"gptq_one_group_asym", R"({"quant_method": "gptq", "bits": 4, "group_size": -1,
                "sym": false, "checkpoint_format": "gptq"})",
                QuantMethod::kGptq, -1, false, true, false, 0, ""},
        Variant{"gptq_v2_act_order_sharded", R"({"quant_method": "gptq", "bits": 4,
                "group_size": 32, "desc_act": true, "sym": false, "checkpoint_format": "gptq_v2"})",
                QuantMethod::kGptq, 32, true, false, false, 20000, ""},
        Variant{"awq_dense_down_proj", R"({"quant_method": "awq", "bits": 4, "group_size": 32,
                "version": "GEMM", "zero_point": true, "modules_to_not_convert": ["down_proj"]})",
                QuantMethod::kAwq, 32, false, false, false, 0, "down_proj"}),
    [](const auto& info) { return info.param.name; });

TEST(Int4, UnpackRecoversWhatTheFormatStores) {
  // Codes, zeros and scales drawn, packed as each format stores them, unpacked into layerpipe's
  // layout: every (row, column) the same, act order as a column order consistent with g_idx.
  std::mt19937 rng(7);
  const LinearSpec l{"x", 24, 64, true};
  for (const Variant& v :
       {Variant{"gptq", "", QuantMethod::kGptq, 16, false, true, false, 0, ""},
        Variant{"gptq_act_order", "", QuantMethod::kGptq, 16, true, true, false, 0, ""},
        Variant{"gptq_v2_act_order", "", QuantMethod::kGptq, 16, true, false, false, 0, ""},
        Variant{"awq", "", QuantMethod::kAwq, 16, false, false, false, 0, ""}}) {
    QuantConfig q;
    q.method = v.method;
    q.group_size = v.group_size;
    q.gptq_v2 = v.method == QuantMethod::kGptq && !v.v1_zeros;
    const DrawnLinear d = Draw(v, l.out, l.in, rng);
    const auto packed = Pack(v, l.name, d);
    std::vector<TensorView> views;
    std::vector<TensorInfo> infos(packed.size());
    for (size_t i = 0; i < packed.size(); ++i) {
      infos[i].dtype = *packed[i].first.dtype;
      infos[i].shape = packed[i].first.shape;
      infos[i].end = packed[i].second.size();
      views.push_back({&infos[i], packed[i].second.data()});
    }
    auto back = UnpackInt4(q, l, views);
    ASSERT_TRUE(back.ok()) << v.name << ": " << back.status();
    EXPECT_EQ(back->perm.empty(), !v.act_order) << v.name;
    for (int64_t o = 0; o < l.out; ++o) {
      for (int64_t j = 0; j < l.in; ++j) {
        const int64_t i = back->perm.empty() ? j : back->perm[size_t(j)];
        ASSERT_EQ(d.group[size_t(i)], j / v.group_size) << v.name << ": column " << j;
        ASSERT_EQ(back->Code(o, j), d.codes[size_t(o * l.in + i)])
            << v.name << ": " << o << ", " << j;
      }
    }
    EXPECT_EQ(back->zeros, d.zeros) << v.name;
    EXPECT_EQ(back->scales, d.scales) << v.name;
  }
}

TEST(Int4, BadGroupIndexIsRefusedWhenLoaded) {
  // g_idx entries outside the groups, or groups of unequal size: the worker's load refuses
  // the linear by name (check-model too: tests/broken_checkpoints.h).
  QuantConfig q;
  q.method = QuantMethod::kGptq;
  q.group_size = 16;
  const LinearSpec l{"model.layers.0.mlp.up_proj", 8, 32, true};
  for (const auto& [g_idx, message] :
       {std::pair{std::vector<int32_t>(32, 0), "group 0 holds 32 inputs"},
        std::pair{std::vector<int32_t>(32, 5), "outside the 2 groups"}}) {
    TensorInfo info;
    info.dtype = DType::kI32;
    info.shape = {32};
    info.end = 128;
    const TensorView view{&info, reinterpret_cast<const uint8_t*>(g_idx.data())};
    auto order = GroupOrder(q, l, view);
    ASSERT_FALSE(order.ok());
    EXPECT_NE(order.status().message().find(message), std::string::npos) << order.status();
    EXPECT_NE(order.status().message().find("up_proj.g_idx"), std::string::npos) << order.status();
  }
}

}  // namespace
}  // namespace lp
