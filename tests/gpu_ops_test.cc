// Every op of the CUDA backend against the CPU backend (the oracle) on fresh random inputs of
// several shapes, odd ones included. Bound: normalized MSE (sum of squared differences over the
// sum of squares of the CPU result) below 1e-4 where bf16 / f16 enters (matrix inputs converted
// for cuBLAS or the tensor cores, 4-bit weights dequantized to f16, the bf16 KV cache), below
// 1e-9 for float32-only ops.
#include <algorithm>
#include <array>
#include <string>
#include <tuple>

#include "common/kv_pages.h"
#include "gpu_util.h"

namespace lp {
namespace {

using lp::testing::GpuTest;
constexpr double kF32Bound = 1e-9;
constexpr double kBf16Bound = 1e-4;

StepLayout Layout(std::vector<SeqChunk> seqs) { return StepLayout{std::move(seqs)}; }

TEST_F(GpuTest, RmsNormAndAddRmsNorm) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 32}, {7, 1000}, {33, 4096}, {3, 5}}) {
    auto [xc, xg] = Act(rows, cols);
    auto [rc, rg] = Act(rows, cols);
    auto [wc, wg] = Weight(1, cols, 0.1f, 1.0f);
    Tensor oc = cpu_->Alloc(rows, cols), og = gpu_->Alloc(rows, cols);
    Poison(og);
    cpu_->RmsNorm(xc, wc, 1e-6f, oc);
    gpu_->RmsNorm(xg, wg, 1e-6f, og);
    EXPECT_LT(Nmse(oc, og), kF32Bound) << rows << "x" << cols;
    Poison(og);
    cpu_->AddRmsNorm(rc, xc, wc, 1e-6f, oc);
    gpu_->AddRmsNorm(rg, xg, wg, 1e-6f, og);
    EXPECT_LT(Nmse(oc, og), kF32Bound) << rows << "x" << cols;
    EXPECT_LT(Nmse(rc, rg), kF32Bound) << "residual " << rows << "x" << cols;
  }
}

// Every path by rows: the GEMV (1 and 2), cuBLASLt (more rows, x converted or copied by the op
// before); bf16 and f16 weights, products that fill the GPU and ones that do not.
TEST_F(GpuTest, MatMulEveryPath) {
  struct Shape {
    int64_t n, k, m;
    bool bias;
  };
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    for (Shape s : {Shape{1, 4096, 1024, false},
                    {1, 64, 96, true},
                    {2, 512, 33, true},
                    {3, 256, 77, false},
                    {3, 768, 70, true},
                    {4, 768, 70, true},
                    {7, 4096, 1000, false},
                    {8, 1024, 512, true},
                    {9, 512, 300, false},
                    {16, 4096, 4096, false},
                    {17, 96, 33, true},
                    {31, 12288, 64, true},
                    {33, 1024, 1000, false},
                    {64, 4096, 1024, true},
                    {64, 1000, 37, true},
                    {5, 333, 129, false},
                    {65, 512, 64, false},
                    {130, 96, 2048, false}}) {
      auto [xc, xg] = Act(s.n, s.k);
      auto [wc, wg] = Weight(s.m, s.k, 0.05f, 0.0f, dtype);
      auto [bc, bg] = Weight(1, s.m);
      Tensor oc = cpu_->Alloc(s.n, s.m), og = gpu_->Alloc(s.n, s.m);
      Poison(og);
      cpu_->MatMul(xc, wc, s.bias ? &bc : nullptr, oc);
      gpu_->MatMul(xg, wg, s.bias ? &bg : nullptr, og);
      EXPECT_LT(Nmse(oc, og), kBf16Bound)
          << s.n << "x" << s.k << " * " << s.m << (dtype == DType::kF16 ? " f16" : " bf16");
    }
  }
}

// A norm's or SwiGLU's output is written in the weight type too, for the product after it (the
// attention's too: the model tests cover that); each product is right whether that guess of the
// type holds (the type of the conversion before) or not (bf16 after f16 and back), and when an
// op between them leaves the copy unused.
TEST_F(GpuTest, NormAndSwigluOutputsFeedTheNextProduct) {
  for (int64_t n : {1, 3, 16, 100}) {
    auto [xc, xg] = Act(n, 512);
    auto [uc, ug] = Act(n, 512);
    auto [rc, rg] = Act(n, 512);
    auto [nc, ng] = Weight(1, 512, 0.1f, 1.0f);
    Tensor hc = cpu_->Alloc(n, 512), hg = gpu_->Alloc(n, 512);
    Tensor oc = cpu_->Alloc(n, 96), og = gpu_->Alloc(n, 96);
    for (DType dtype : {DType::kBF16, DType::kF16, DType::kF16, DType::kBF16}) {
      auto [wc, wg] = Weight(96, 512, 0.05f, 0.0f, dtype);
      const std::string what = std::to_string(n) + (dtype == DType::kF16 ? " f16" : " bf16");
      Poison(og);  // (an upload: before the op whose copy the product is to use)
      cpu_->RmsNorm(xc, nc, 1e-6f, hc);
      gpu_->RmsNorm(xg, ng, 1e-6f, hg);
      cpu_->MatMul(hc, wc, nullptr, oc);
      gpu_->MatMul(hg, wg, nullptr, og);
      EXPECT_LT(Nmse(oc, og), kBf16Bound) << "norm " << what;
      Poison(og);
      cpu_->AddRmsNorm(rc, xc, nc, 1e-6f, hc);
      gpu_->AddRmsNorm(rg, xg, ng, 1e-6f, hg);
      cpu_->MatMul(hc, wc, nullptr, oc);
      gpu_->MatMul(hg, wg, nullptr, og);
      EXPECT_LT(Nmse(oc, og), kBf16Bound) << "add, norm " << what;
      Poison(og);
      cpu_->SiluMul(xc, uc, hc);
      gpu_->SiluMul(xg, ug, hg);
      cpu_->Add(hc, uc);  // an op between: the product reads the sum
      gpu_->Add(hg, ug);
      cpu_->MatMul(hc, wc, nullptr, oc);
      gpu_->MatMul(hg, wg, nullptr, og);
      EXPECT_LT(Nmse(oc, og), kBf16Bound) << "swiglu, add " << what;
      Poison(og);
      cpu_->SiluMul(xc, uc, hc);
      gpu_->SiluMul(xg, ug, hg);
      cpu_->MatMul(hc, wc, nullptr, oc);
      gpu_->MatMul(hg, wg, nullptr, og);
      EXPECT_LT(Nmse(oc, og), kBf16Bound) << "swiglu " << what;
    }
  }
}

// Where the backend allows it (prefill-sized steps), the activations that only products and the
// residual add read are in the weight type: the norms and products write them so, products,
// SwiGLU, the norm's add and Add read them so, and the results stay within bf16's error of the
// CPU's float32 (the attention's output in that type: GpuModelTest's long prefill).
TEST_F(GpuTest, ActivationsInTheWeightTypeAgreeWithFloat32) {
  const std::array<int64_t, 2> widths = {256, 296};
  EXPECT_FALSE(gpu_->ActivationsInWeightType(1, widths));   // the GEMV's rows
  EXPECT_FALSE(gpu_->ActivationsInWeightType(64, widths));  // a decode step's
  EXPECT_FALSE(gpu_->ActivationsInWeightType(300, std::array<int64_t, 2>{256, 300}));
  EXPECT_FALSE(cpu_->ActivationsInWeightType(300, widths));
  for (int64_t n : {65, 301}) {
    ASSERT_TRUE(gpu_->ActivationsInWeightType(n, widths));
    for (DType dtype : {DType::kBF16, DType::kF16}) {
      const std::string what = std::to_string(n) + (dtype == DType::kF16 ? " f16" : " bf16");
      auto [xc, xg] = Act(n, 256);
      auto [rc, rg] = Act(n, 256);
      auto [nc, ng] = Weight(1, 256, 0.1f, 1.0f);
      auto [gwc, gwg] = Weight(296, 256, 0.05f, 0.0f, dtype);
      auto [uwc, uwg] = Weight(296, 256, 0.05f, 0.0f, dtype);
      auto [dwc, dwg] = Weight(256, 296, 0.05f, 0.0f, dtype);
      Tensor hc = cpu_->Alloc(n, 256), hg = gpu_->Alloc(n, 256);
      Tensor gc = cpu_->Alloc(n, 296), uc = cpu_->Alloc(n, 296), ac = cpu_->Alloc(n, 296);
      Tensor gg = gpu_->Alloc(n, 296), ug = gpu_->Alloc(n, 296), ag = gpu_->Alloc(n, 296);
      Tensor pc = cpu_->Alloc(n, 256), pg = gpu_->Alloc(n, 256);
      Tensor oc = cpu_->Alloc(n, 296), og = gpu_->Alloc(n, 296);
      Poison(og);
      hg.dtype = gg.dtype = ug.dtype = ag.dtype = pg.dtype = dtype;
      cpu_->RmsNorm(xc, nc, 1e-6f, hc);
      gpu_->RmsNorm(xg, ng, 1e-6f, hg);
      cpu_->MatMul(hc, gwc, nullptr, gc);
      gpu_->MatMul(hg, gwg, nullptr, gg);
      cpu_->MatMul(hc, uwc, nullptr, uc);
      gpu_->MatMul(hg, uwg, nullptr, ug);
      cpu_->SiluMul(gc, uc, ac);
      gpu_->SiluMul(gg, ug, ag);
      cpu_->MatMul(ac, dwc, nullptr, pc);
      gpu_->MatMul(ag, dwg, nullptr, pg);
      cpu_->AddRmsNorm(rc, pc, nc, 1e-6f, hc);  // rc += pc; hc = norm(rc)
      gpu_->AddRmsNorm(rg, pg, ng, 1e-6f, hg);
      cpu_->MatMul(hc, gwc, nullptr, oc);
      gpu_->MatMul(hg, gwg, nullptr, og);
      EXPECT_LT(Nmse(oc, og), kBf16Bound) << "the chain's product, " << what;
      cpu_->Add(rc, pc);
      gpu_->Add(rg, pg);
      EXPECT_LT(Nmse(rc, rg), kBf16Bound) << "the residual, " << what;
    }
  }
}

// Products of one input issued back to back (q, k, v) go out as one launch; each is still right.
TEST_F(GpuTest, MatMulsOfOneInputShareALaunch) {
  for (int64_t n :
       {1, 2, 3, 4, 8, 16, 40, 64, 100}) {  // GEMV launches, then cuBLASLt with one conversion
    auto [xc, xg] = Act(n, 512);
    std::vector<std::pair<Tensor, Tensor>> w, out;
    for (int64_t m : {512, 128, 136, 40, 1000}) {
      w.push_back(Weight(m, 512));
      out.push_back({cpu_->Alloc(n, m), gpu_->Alloc(n, m)});
      Poison(out.back().second);
    }
    for (size_t i = 0; i < w.size(); ++i) {
      cpu_->MatMul(xc, w[i].first, nullptr, out[i].first);
      gpu_->MatMul(xg, w[i].second, nullptr, out[i].second);
    }
    for (size_t i = 0; i < w.size(); ++i) {
      EXPECT_LT(Nmse(out[i].first, out[i].second), kBf16Bound) << n << " rows, product " << i;
    }
  }
}

// The products of one input after its first run on side streams beside it: a product reading
// one of their outputs, and any other op, waits for them. q, then k and v beside it, then a
// product of v; again two products of the input, then an op on the second. At 3 and 40 rows
// (cuBLASLt, beside) and 300 (cuBLASLt, all on one stream: more than kSideMaxRows).
TEST_F(GpuTest, ProductsBesideTheFirstAreWaitedFor) {
  for (int64_t n : {3, 40, 300}) {
    auto x = Act(n, 256);
    std::vector<std::pair<Tensor, Tensor>> w = {Weight(512, 256), Weight(128, 256),
                                                Weight(1024, 256), Weight(256, 1024)};
    std::vector<std::pair<Tensor, Tensor>> y;
    for (int64_t m : {512, 128, 1024, 256, 128, 512}) {
      y.push_back({cpu_->Alloc(n, m), gpu_->Alloc(n, m)});
      Poison(y.back().second);
    }
    for (bool on_gpu : {false, true}) {
      Backend& b = on_gpu ? *gpu_ : *cpu_;
      auto of = [on_gpu](std::pair<Tensor, Tensor>& p) -> Tensor& {
        return on_gpu ? p.second : p.first;
      };
      b.MatMul(of(x), of(w[0]), nullptr, of(y[0]));
      b.MatMul(of(x), of(w[1]), nullptr, of(y[1]));     // beside the first
      b.MatMul(of(x), of(w[2]), nullptr, of(y[2]));     // beside the first
      b.MatMul(of(y[2]), of(w[3]), nullptr, of(y[3]));  // reads a product run beside
      b.MatMul(of(x), of(w[1]), nullptr, of(y[4]));
      b.MatMul(of(x), of(w[0]), nullptr, of(y[5]));  // beside the one before
      b.Add(of(y[5]), of(y[5]));                     // an op on it
    }
    for (size_t i = 0; i < y.size(); ++i) {
      EXPECT_LT(Nmse(y[i].first, y[i].second), kBf16Bound) << n << " rows, output " << i;
    }
  }
}

// 4-bit products against the CPU's dequantized float32 weight: every path by rows (GEMV 1..8
// and up to 16, the tiled kernel at 17..128, dequantization + cuBLAS above), with bias, act
// order, groups of 32, 128, a whole row and 96 (groups that straddle the kernels' 64-column
// chunks); Qwen3-8B's k = 12288 (down_proj) split over blocks; products wide enough for the
// GEMV's two-tile blocks.
TEST_F(GpuTest, MatMulInt4AllPaths) {
  struct Shape {
    int64_t n, k, m, group;
    bool bias, perm;
  };
  std::vector<Shape> shapes;
  for (int64_t n = 1; n <= 8; ++n) {
    shapes.push_back({n, 512, 256, n % 2 ? 128 : 32, n % 3 == 0, n % 4 == 1});
  }
  for (Shape s : {Shape{1, 4096, 1024, 128, false, false},
                  {1, 12288, 128, 128, true, false},
                  {4, 256, 80, 256, true, true},
                  {12, 1024, 272, 32, false, false},
                  {16, 512, 256, 128, true, true},
                  {16, 1024, 1040, 1024, false, false},
                  {17, 512, 144, 32, true, false},
                  {64, 512, 256, 128, false, true},
                  {64, 4096, 384, 128, true, false},
                  {100, 1024, 192, 1024, false, false},
                  {128, 512, 256, 64, true, false},
                  {300, 512, 256, 128, true, true},
                  {300, 1024, 320, 32, false, false},
                  {129, 256, 64, 256, true, false},
                  {3, 384, 64, 96, true, false},
                  {40, 768, 160, 96, false, true},
                  // >= 1056 m-tiles: the GEMV's two-tile blocks (odd tile counts included)
                  {1, 384, 16912, 96, true, false},
                  {5, 512, 17424, 32, true, true},
                  {12, 256, 17408, 128, false, false},
                  {16, 384, 16912, 96, true, false}}) {
    shapes.push_back(s);
  }
  for (const Shape& s : shapes) {
    const Int4Matrix m = RandomInt4(s.m, s.k, s.group, s.perm);
    auto [wc, wg] = Int4Weight(m);
    EXPECT_NE(wg.packed, nullptr);
    auto [xc, xg] = Act(s.n, s.k);
    auto [bc, bg] = Weight(1, s.m);
    Tensor oc = cpu_->Alloc(s.n, s.m), og = gpu_->Alloc(s.n, s.m);
    Poison(og);
    Project(*cpu_, xc, wc, s.bias ? &bc : nullptr, oc);
    Project(*gpu_, xg, wg, s.bias ? &bg : nullptr, og);
    EXPECT_LT(Nmse(oc, og), kBf16Bound)
        << s.n << "x" << s.k << " * " << s.m << ", group " << s.group
        << (s.perm ? ", act order" : "") << (s.bias ? ", bias" : "");
  }
}

// With batch_invariant on, a product is right (bf16 and 4-bit weights) and each row of its
// result is the same bits whatever the number of rows and wherever the row sits among them.
TEST_F(GpuTest, BatchInvariantMatMulIsTheSameForEveryRowCount) {
  CudaBackendOptions options;
  options.batch_invariant = true;
  gpu_ = MakeCudaBackend(0, options);
  struct Shape {
    int64_t k, m, group;  // group 0: bf16
    bool bias, perm;
  };
  constexpr int64_t kRows = 200;
  for (Shape s : {Shape{4096, 1024, 0, false, false},
                  {96, 300, 0, true, false},
                  {1000, 37, 0, false, false},
                  {520, 2048, 0, true, false},
                  {512, 256, 128, true, true},
                  {1024, 320, 32, false, false}}) {
    std::pair<Linear, Linear> w;
    if (s.group > 0) {
      w = Int4Weight(RandomInt4(s.m, s.k, s.group, s.perm));
    } else {
      auto [wc, wg] = Weight(s.m, s.k);
      w = {Linear{wc, nullptr, s.m, s.k}, Linear{wg, nullptr, s.m, s.k}};
    }
    const std::string what =
        std::to_string(s.k) + " -> " + std::to_string(s.m) + (s.group > 0 ? ", 4-bit" : ", bf16");
    auto [bc, bg] = Weight(1, s.m);
    const auto host = Random(size_t(kRows * s.k));
    Tensor xc = cpu_->Alloc(kRows, s.k), xg = gpu_->Alloc(kRows, s.k);
    cpu_->Upload(host, xc);
    gpu_->Upload(host, xg);
    Tensor oc = cpu_->Alloc(kRows, s.m), og = gpu_->Alloc(kRows, s.m);
    Poison(og);
    Project(*cpu_, xc, w.first, s.bias ? &bc : nullptr, oc);
    Project(*gpu_, xg, w.second, s.bias ? &bg : nullptr, og);
    EXPECT_LT(Nmse(oc, og), kBf16Bound) << what;
    const auto all = Get(*gpu_, og);
    for (int64_t n : {1, 2, 7, 8, 9, 16, 33, 64, 65, 130}) {
      // Rows offset, offset + 1, ... of the full input, so each row sits elsewhere.
      const int64_t offset = (17 * n) % kRows;
      std::vector<float> sub(size_t(n * s.k));
      for (int64_t i = 0; i < n; ++i) {
        const int64_t r = (offset + i) % kRows;
        std::copy_n(host.begin() + r * s.k, s.k, sub.begin() + i * s.k);
      }
      Tensor x = gpu_->Alloc(n, s.k), out = gpu_->Alloc(n, s.m);
      gpu_->Upload(sub, x);
      Project(*gpu_, x, w.second, s.bias ? &bg : nullptr, out);
      const auto got = Get(*gpu_, out);
      int differing = 0;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t r = (offset + i) % kRows;
        differing += std::memcmp(got.data() + i * s.m, all.data() + r * s.m,
                                 size_t(s.m) * sizeof(float)) != 0;
      }
      EXPECT_EQ(differing, 0) << what << ": rows of " << n << " differ from the same rows of "
                              << kRows;
    }
  }
}

// q, k, v (and gate, up) of one input share the GEMV's launch, a perm'd one goes alone, and a
// shape the packed kernels do not take is loaded dense; each product is still right.
TEST_F(GpuTest, MatMulInt4SharedLaunchesAndDenseFallback) {
  for (int64_t n : {1, 5, 16, 40, 200}) {
    auto [xc, xg] = Act(n, 256);
    std::vector<std::pair<Linear, Linear>> w;
    std::vector<std::pair<Tensor, Tensor>> out;
    const std::vector<std::tuple<int64_t, int64_t, bool>> mats = {
        {256, 64, false}, {64, 64, false}, {64, 32, false}, {128, 128, true},
        {48, 256, false}, {40, 32, false}};  // 40 rows: not a multiple of 16, loaded dense
    for (auto [m, group, perm] : mats) {
      w.push_back(Int4Weight(RandomInt4(m, 256, group, perm)));
      out.push_back({cpu_->Alloc(n, m), gpu_->Alloc(n, m)});
      Poison(out.back().second);
    }
    EXPECT_EQ(w.back().second.packed, nullptr);
    for (size_t i = 0; i < w.size(); ++i) {
      Project(*cpu_, xc, w[i].first, nullptr, out[i].first);
      Project(*gpu_, xg, w[i].second, nullptr, out[i].second);
    }
    for (size_t i = 0; i < w.size(); ++i) {
      EXPECT_LT(Nmse(out[i].first, out[i].second), kBf16Bound) << n << " rows, product " << i;
    }
  }
}

TEST_F(GpuTest, QkNormRopeAtManyPositions) {
  for (int64_t hd : {16, 64, 128}) {
    for (bool norm : {true, false}) {
      AttentionParams p{6, 2, hd, 1000000.0, 1e-6f};
      const auto layout = Layout({{0, 0, 5}, {1, 4000, 1}, {2, 17, 40}});
      const int64_t rows = layout.total_tokens();
      auto [qc, qg] = Act(rows, p.num_heads * hd);
      auto [kc, kg] = Act(rows, p.num_kv_heads * hd);
      auto [qn_c, qn_g] = Weight(1, hd, 0.1f, 1.0f);
      auto [kn_c, kn_g] = Weight(1, hd, 0.1f, 1.0f);
      cpu_->BeginStep(layout);
      gpu_->BeginStep(layout);
      cpu_->QkNormRope(qc, kc, norm ? &qn_c : nullptr, norm ? &kn_c : nullptr, p);
      gpu_->QkNormRope(qg, kg, norm ? &qn_g : nullptr, norm ? &kn_g : nullptr, p);
      EXPECT_LT(Nmse(qc, qg), 1e-8) << "q, head_dim " << hd;
      EXPECT_LT(Nmse(kc, kg), 1e-8) << "k, head_dim " << hd;
    }
  }
}

// Attention after a first step fills the cache: the second step mixes decode tokens and a
// prefill chunk continuing a sequence, so every kernel (split for short decode steps, flash over
// chunks for other steps of <= 64 rows and decode rows at long positions, flash over query tiles
// above; head_dim 256: split and the float32 tiled kernel) sees cached and fresh keys, several
// slots and positions.
TEST_F(GpuTest, AttentionPrefillThenMixedSteps) {
  struct Case {
    int64_t heads, kv_heads, hd;
    std::vector<SeqChunk> first, second;
  };
  const std::vector<Case> cases = {
      {4, 2, 16, {{0, 0, 7}, {1, 0, 1}}, {{0, 7, 1}, {1, 1, 3}}},
      {32, 8, 128, {{2, 0, 100}, {0, 0, 37}}, {{2, 100, 1}, {0, 37, 1}, {1, 0, 70}}},
      {14, 2, 64, {{0, 0, 129}}, {{0, 129, 1}, {1, 0, 5}}},
      {16, 8, 128, {{0, 0, 3}, {1, 0, 250}, {3, 0, 1}}, {{1, 250, 33}, {3, 1, 1}}},
      // Decode rows past kLongDecodePosition: the tensor-core kernel over chunks.
      {32, 8, 128, {{0, 0, 1100}, {2, 0, 1500}}, {{0, 1100, 1}, {2, 1500, 1}}},
      {14, 2, 64, {{1, 0, 1200}}, {{1, 1200, 1}}},
      // A prompt's last chunk after a long prefix, with decode rows: the tensor-core kernel
      // over chunks of query tiles of 32 and 1 rows; KV groups of 1 and 8.
      {32, 8, 128, {{0, 0, 1500}, {1, 0, 10}}, {{0, 1500, 40}, {1, 10, 1}}},
      {8, 8, 64, {{0, 0, 1300}}, {{0, 1300, 20}, {1, 0, 3}}},
      {32, 4, 32, {{0, 0, 600}}, {{0, 600, 33}, {2, 0, 1}}},
      // Past 4096 positions chunks grow with the position.
      {4, 1, 64, {{0, 0, 4100}}, {{0, 4100, 20}, {1, 0, 1}}},
      // Short decode steps: the split kernel, storing the new keys itself.
      {8, 2, 64, {{0, 0, 50}, {1, 0, 20}}, {{0, 50, 1}, {1, 20, 1}}},
      // head_dim 256: the float32 tiled kernel, then the split kernel for a short mixed step.
      {8, 2, 256, {{0, 0, 70}}, {{0, 70, 5}, {1, 0, 1}}},
  };
  for (const auto& c : cases) {
    AttentionParams p{c.heads, c.kv_heads, c.hd, 10000.0, 1e-6f};
    constexpr int64_t kPositions = 4352;
    const KvCacheShape shape{.num_layers = 2,
                             .num_blocks = 4 * kPositions / kDefaultKvBlockTokens,
                             .block_tokens = kDefaultKvBlockTokens,
                             .max_blocks_per_seq = kPositions / kDefaultKvBlockTokens,
                             .max_seqs = 4,
                             .num_kv_heads = c.kv_heads,
                             .head_dim = c.hd};
    gpu_ = MakeCudaBackend(0);  // a backend holds one KV cache (its block tables' buffers)
    auto cache_c = cpu_->CreateKvCache(shape);
    auto cache_g = gpu_->CreateKvCache(shape);
    for (const auto* seqs : {&c.first, &c.second}) {
      const auto layout = Layout(*seqs);
      const int64_t rows = layout.total_tokens();
      auto [qc, qg] = Act(rows, c.heads * c.hd);
      auto [kc, kg] = Act(rows, c.kv_heads * c.hd);
      auto [vc, vg] = Act(rows, c.kv_heads * c.hd);
      Tensor oc = cpu_->Alloc(rows, c.heads * c.hd), og = gpu_->Alloc(rows, c.heads * c.hd);
      Poison(og);
      cpu_->BeginStep(layout);
      gpu_->BeginStep(layout);
      cpu_->Attention(qc, kc, vc, *cache_c, 1, p, oc);
      gpu_->Attention(qg, kg, vg, *cache_g, 1, p, og);
      EXPECT_LT(Nmse(oc, og), kBf16Bound)
          << c.heads << "/" << c.kv_heads << "x" << c.hd << ", " << rows << " rows";
    }
  }
}

TEST_F(GpuTest, EmbedSiluMulAddGather) {
  auto [tc, tg] = Weight(1001, 96);
  std::vector<int32_t> ids = {0, 1000, 5, 5, 999, 17, 3};
  const auto layout = Layout({{0, 0, int32_t(ids.size())}});
  Tensor ec = cpu_->Alloc(7, 96), eg = gpu_->Alloc(7, 96);  // before BeginStep: sizes its buffers
  cpu_->BeginStep(layout);
  gpu_->BeginStep(layout);
  Poison(eg);
  cpu_->Embed(tc, ids, ec);
  gpu_->Embed(tg, ids, eg);
  EXPECT_LT(Nmse(ec, eg), kF32Bound);

  auto [gc, gg] = Act(13, 301);
  auto [uc, ug] = Act(13, 301);
  Tensor oc = cpu_->Alloc(13, 301), og = gpu_->Alloc(13, 301);
  Poison(og);
  cpu_->SiluMul(gc, uc, oc);
  gpu_->SiluMul(gg, ug, og);
  EXPECT_LT(Nmse(oc, og), kF32Bound);
  cpu_->Add(gc, uc);
  gpu_->Add(gg, ug);
  EXPECT_LT(Nmse(gc, gg), kF32Bound);

  std::vector<int32_t> rows(70);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = int32_t((i * 7) % 13);
  Tensor rc = cpu_->Alloc(70, 301), rg = gpu_->Alloc(70, 301);
  Poison(rg);
  cpu_->GatherRows(gc, rows, rc);
  gpu_->GatherRows(gg, rows, rg);
  EXPECT_LT(Nmse(rc, rg), kF32Bound);
}

// The same inputs as the CPU's SampleRow, every parameter mixed in one batch: greedy (with and
// without the repetition penalty) and log-probabilities agree exactly in ids and closely in
// values; drawn tokens agree for the same seed and position except where float rounding of a sum
// moves a boundary (rare: at most one row in twenty; the old test of 24 rows allowed one). The
// logits are unchanged afterwards (the penalty is undone), and a row's token does not depend on
// its neighbours or its place in the batch.
TEST_F(GpuTest, SampleMatchesHostSamplingWithEveryParameter) {
  for (int64_t vocab : {int64_t(1000), int64_t(151936), int64_t(37)}) {
    const int64_t rows = 40;
    auto [lc, lg] = Act(rows, vocab, 3.0f);
    std::vector<std::vector<int32_t>> seen(static_cast<size_t>(rows));
    std::vector<SampleInput> in(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      auto& p = in[size_t(r)].params;
      p.seed = uint64_t(r) * 7919 + uint64_t(vocab);
      in[size_t(r)].position = 5 + r;
      p.logprobs = int32_t(r % 6 == 0 ? 20 : r % 3);
      if (r % 4 != 0) p.temperature = 0.5f + 0.25f * float(r % 5);
      if (r % 4 == 2) p.top_k = int32_t(1 + r);
      if (r % 4 == 3) p.top_p = 0.5f + 0.01f * float(r);
      if (r % 8 == 1) {
        p.top_k = 40;
        p.top_p = 0.9f;
      }
      if (r % 5 == 1) p.min_p = 0.02f * float(1 + r % 7);
      if (r % 3 == 1) {
        p.repetition_penalty = r % 2 ? 1.3f : 0.8f;
        // The row's largest logits among others, and a repeat.
        for (int64_t i = 0; i < std::min<int64_t>(vocab, 64 + 8 * r); i += 1 + r % 5) {
          seen[size_t(r)].push_back(int32_t((i * 7 + r) % vocab));
        }
        seen[size_t(r)].push_back(seen[size_t(r)].front());
      }
      in[size_t(r)].seen = seen[size_t(r)];
    }
    const std::vector<float> before = Get(*gpu_, lg);
    std::vector<SampleResult> rc(static_cast<size_t>(rows)), rg(static_cast<size_t>(rows));
    cpu_->Sample(lc, in, rc);
    gpu_->Sample(lg, in, rg);
    EXPECT_EQ(Get(*gpu_, lg), before) << "vocab " << vocab << ": the logits changed";
    int same = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const auto &a = rc[size_t(r)], &b = rg[size_t(r)];
      same += a.id == b.id;
      if (in[size_t(r)].params.temperature == 0.0f) EXPECT_EQ(a.id, b.id) << "greedy row " << r;
      if (a.id == b.id) EXPECT_NEAR(a.logprob, b.logprob, 1e-3) << "row " << r;
      ASSERT_EQ(a.top.size(), b.top.size()) << "row " << r;
      for (size_t i = 0; i < a.top.size(); ++i) {
        EXPECT_EQ(a.top[i].id, b.top[i].id) << "row " << r << " rank " << i;
        EXPECT_NEAR(a.top[i].logprob, b.top[i].logprob, 1e-3) << "row " << r << " rank " << i;
      }
      EXPECT_GE(b.id, 0);
      EXPECT_LT(b.id, vocab);
    }
    EXPECT_GE(same, rows - rows / 20) << "vocab " << vocab;

    // The batch reversed: every row keeps its token, to the bit.
    std::vector<int32_t> reverse(static_cast<size_t>(rows));
    std::vector<SampleInput> in_rev(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      reverse[size_t(r)] = int32_t(rows - 1 - r);
      in_rev[size_t(r)] = in[size_t(rows - 1 - r)];
    }
    Tensor lg_rev = gpu_->Alloc(rows, vocab);
    gpu_->GatherRows(lg, reverse, lg_rev);
    std::vector<SampleResult> rg_rev(static_cast<size_t>(rows));
    gpu_->Sample(lg_rev, in_rev, rg_rev);
    for (int64_t r = 0; r < rows; ++r) {
      EXPECT_EQ(rg_rev[size_t(rows - 1 - r)].id, rg[size_t(r)].id) << "row " << r << " reversed";
    }
  }
}

TEST(GpuDevice, PinningAMissingDeviceIsAnError) {
  EXPECT_FALSE(cuda::PinDevice(cuda::DeviceCount()).ok());
}

TEST(GpuDevice, DeviceAnswersAndSelfTestPasses) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible: GPU tests skipped";
  auto desc = cuda::DeviceDescription(0);
  ASSERT_TRUE(desc.ok()) << desc.status();
  std::printf("device 0: %s\n", desc->c_str());
  EXPECT_TRUE(cuda::SelfTest().ok());
}

// What the attention kernels cannot run is refused by CheckAttention (a slice asks at load),
// with the value and what is supported; the CPU backend runs any grouped shape.
TEST_F(GpuTest, AttentionShapesTheKernelsCannotRunAreRefused) {
  AttentionParams p;
  p.num_heads = 16;
  p.num_kv_heads = 8;
  p.head_dim = 128;
  EXPECT_TRUE(gpu_->CheckAttention(p).ok());
  p.head_dim = 96;
  auto s = gpu_->CheckAttention(p);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("head_dim 96"), std::string::npos) << s;
  EXPECT_NE(s.message().find("16, 32, 64, 128 or 256"), std::string::npos) << s;
  EXPECT_TRUE(cpu_->CheckAttention(p).ok());
  p.head_dim = 64;
  p.num_heads = 32;
  p.num_kv_heads = 2;  // 16 query heads per KV head
  s = gpu_->CheckAttention(p);
  EXPECT_NE(s.message().find("up to 8 query heads per KV head"), std::string::npos) << s;
  EXPECT_TRUE(cpu_->CheckAttention(p).ok());
}

}  // namespace
}  // namespace lp
