// Fuzz target: the steps a worker is sent (WorkerCore::Step), on the three stages of the
// qwen3-small-sharded fixture (first: token ids; middle: hidden states; last: sampling), with
// the hidden state reassembled from chunks as the gRPC service does. Each input is a few steps
// built from the bytes (fuzz_input.h): slots, positions, lengths, ids, hidden-state sizes and
// values, sampling parameters, IPC ring slots. A step must succeed or fail with an error; one
// that succeeds must answer with sampled ids inside the vocabulary and hidden states of the
// step's size.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <string_view>
#include <vector>

#include "common/activation_chunks.h"
#include "common/checkpoint.h"
#include "engine/backend_factory.h"
#include "engine/slice.h"
#include "fuzz/fixture_dir.h"
#include "fuzz/fuzz_input.h"
#include "worker/worker_core.h"

namespace {

using lp::fuzz::FuzzInput;

constexpr lp::SliceLimits kLimits{.max_batch = 4, .max_context = 48, .max_step_tokens = 24};

struct Stages {
  std::unique_ptr<lp::Checkpoint> ckpt;
  std::vector<std::unique_ptr<lp::WorkerCore>> cores;
};

Stages& Load() {
  static Stages* stages = [] {
    auto* s = new Stages;
    auto ckpt = lp::Checkpoint::Open(lp::fuzz::FixtureDir("qwen3-small-sharded"));
    if (!ckpt.ok()) {
      std::fprintf(stderr, "worker_step_fuzz: %s\n", std::string(ckpt.status().message()).c_str());
      std::abort();
    }
    s->ckpt = std::move(*ckpt);
    for (const lp::SliceSpec& spec : lp::EvenSlices(s->ckpt->config().num_layers, 3)) {
      auto backend = lp::MakeBackend("cpu:0");
      if (!backend.ok()) std::abort();
      auto slice = lp::Slice::Load(*s->ckpt, spec, kLimits, std::move(*backend));
      if (!slice.ok()) std::abort();
      s->cores.push_back(std::make_unique<lp::WorkerCore>(std::move(*slice), lp::WorkerIdentity{}));
    }
    return s;
  }();
  return *stages;
}

layerpipe::v1::StepRequest ReadRequest(FuzzInput& in, int64_t* tokens) {
  layerpipe::v1::StepRequest r;
  r.set_step_id(in.Byte());
  for (int n = in.Byte() % 4; n > 0; --n) r.add_release_slots(in.Int());
  *tokens = 0;
  for (int n = in.Byte() % 6; n > 0; --n) {
    auto* s = r.add_seqs();
    s->set_slot(in.Int());
    s->set_start_pos(in.Int());
    s->set_n_tokens(in.Int());
    *tokens += s->n_tokens();
    if (in.Byte() & 1) {
      auto* p = s->mutable_sampling();
      p->set_temperature(in.Float());
      p->set_top_k(in.Int());
      p->set_top_p(in.Float());
      p->set_min_p(in.Float());
      p->set_repetition_penalty(in.Float());
      p->set_seed(in.Byte());
      p->set_logprobs(in.Int());
    }
  }
  // Ids: as many as the step's tokens, or a count of the fuzzer's choosing.
  const uint8_t ids_mode = in.Byte();
  const int64_t n_ids = ids_mode & 1 ? in.Int() : *tokens;
  for (int64_t i = 0; i < n_ids && i < 256; ++i) r.add_ids(in.Int());
  const uint8_t ipc = in.Byte();
  if (ipc & 1) r.set_ipc_in_slot(in.Int());
  if (ipc & 2) r.set_ipc_out_slot(in.Int());
  if (ipc & 4) r.set_ipc_in_instance(in.Byte());
  return r;
}

// The hidden state's bytes, split into chunks and reassembled as WorkerService::Step does:
// false when the service would not run the step (too large, or the stream ended mid-chunk).
bool ReadHidden(FuzzInput& in, int64_t tokens, int64_t hidden_size, std::vector<float>* hidden) {
  const uint8_t mode = in.Byte();
  int64_t n = tokens * hidden_size;
  if (mode & 1) n += in.Int();  // off by a few, or anything
  n = std::clamp<int64_t>(n, 0, 4 * kLimits.max_step_tokens * hidden_size);
  std::vector<float> values(size_t(n), in.Float());
  if (!values.empty()) values[size_t(in.Byte()) % values.size()] = in.Float();
  std::string_view bytes(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  if (mode & 2) bytes.remove_suffix(std::min<size_t>(bytes.size(), in.Byte() % 4));
  lp::ChunkAssembler assembler(size_t(kLimits.max_step_tokens * hidden_size) * sizeof(float));
  const size_t chunk = 1 + in.Byte() * 16;
  const bool stops = mode & 4;  // the stream ends before the last chunk
  lp::ForEachChunk(bytes, chunk, [&](std::string_view piece, bool last) {
    return assembler.Add(piece, last && !stops) == lp::ChunkAssembler::State::kPartial;
  });
  if (assembler.state() != lp::ChunkAssembler::State::kComplete) return false;
  return assembler.Floats(hidden).ok();
}

}  // namespace

// Loads the fixture before the first input, so that no input is timed with it.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Load();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  Stages& stages = Load();
  const int32_t all_slots[] = {0, 1, 2, 3};
  static_assert(std::size(all_slots) == kLimits.max_batch);
  for (auto& core : stages.cores) core->Release(all_slots);  // every input starts afresh
  const int64_t hidden_size = stages.ckpt->config().hidden_size;
  const int64_t vocab = stages.ckpt->config().vocab_size;
  FuzzInput in(data, size);
  for (int step = 0; step < 6 && !in.empty(); ++step) {
    lp::WorkerCore& core = *stages.cores[in.Byte() % stages.cores.size()];
    int64_t tokens = 0;
    const layerpipe::v1::StepRequest request = ReadRequest(in, &tokens);
    std::vector<float> hidden_in, hidden_out;
    if (!core.slice().spec().embed && !ReadHidden(in, tokens, hidden_size, &hidden_in)) continue;
    layerpipe::v1::StepResponse response;
    if (!core.Step(request, hidden_in, &hidden_out, &response).ok()) continue;
    for (const auto& t : response.sampled()) {
      if (t.id() < 0 || t.id() >= vocab || t.slot() < 0 || t.slot() >= kLimits.max_batch) {
        std::abort();
      }
    }
    if (!core.slice().spec().head && hidden_out.size() != size_t(tokens * hidden_size)) {
      std::abort();
    }
  }
  return 0;
}
