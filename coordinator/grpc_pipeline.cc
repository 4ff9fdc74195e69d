// The pipeline over gRPC (see grpc_pipeline.h).
#include "coordinator/grpc_pipeline.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "common/cluster_config.h"
#include "common/device.h"
#include "common/protocol.h"

namespace lp {

layerpipe::v1::StepRequest MakeStepRequest(const StepInput& step, uint64_t step_id) {
  layerpipe::v1::StepRequest header;
  header.set_step_id(step_id);
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const SeqChunk& s = step.seqs[i];
    auto* seq = header.add_seqs();
    if (i < step.request_ids.size()) seq->set_request_id(step.request_ids[i]);
    seq->set_slot(s.slot);
    seq->set_start_pos(s.start_pos);
    seq->set_n_tokens(s.n_tokens);
    seq->mutable_blocks()->Add(s.blocks.begin(), s.blocks.end());
    seq->mutable_prefix_ids()->Add(s.prefix_ids.begin(), s.prefix_ids.end());
    if (s.sampling) {
      auto* p = seq->mutable_sampling();
      p->set_temperature(s.sampling->temperature);
      p->set_top_k(s.sampling->top_k);
      p->set_top_p(s.sampling->top_p);
      p->set_min_p(s.sampling->min_p);
      p->set_repetition_penalty(s.sampling->repetition_penalty);
      p->set_seed(s.sampling->seed);
      p->set_logprobs(s.sampling->logprobs);
    }
  }
  header.mutable_ids()->Add(step.ids.begin(), step.ids.end());
  header.mutable_release_slots()->Add(step.release_slots.begin(), step.release_slots.end());
  return header;
}

GrpcPipeline::GrpcPipeline(std::vector<WorkerExpectation> workers, Options options,
                           std::function<void(bool)> on_ready_change,
                           std::shared_ptr<grpc::ChannelCredentials> credentials) {
  // CPU workers of one host share its memory bandwidth, which bounds their decode: like workers
  // sharing a GPU, they count as one device.
  std::set<std::pair<std::string, std::string>> devices;
  for (const auto& w : workers) {
    devices.insert({HostOf(w.address), IsCudaDevice(w.device) ? w.device : "cpu"});
  }
  depth_ = std::clamp<int>(int(devices.size()), 1, kIpcRing);  // ring slots bound it
  for (auto& w : workers) {
    links_.push_back(std::make_unique<WorkerLink>(std::move(w), credentials));
  }
  decode_ahead_ = options.decode_ahead && links_.size() == 1;
  ipc_ = std::make_unique<IpcTopology>(links_, options.allow_ipc);
  monitor_ = std::make_unique<HealthMonitor>(links_, ipc_.get(), options.monitor_period_ms,
                                             std::move(on_ready_change));
  for (size_t i = 0; i <= links_.size(); ++i) queues_.push_back(std::make_unique<Queue>());
  monitor_->CheckAll();
  for (size_t i = 0; i < links_.size(); ++i) {
    stage_threads_.emplace_back([this, i] { decode_ahead() ? RunOnlyStage() : RunStage(i); });
  }
  monitor_->Start();
}

GrpcPipeline::~GrpcPipeline() {
  stopping_ = true;
  monitor_->Stop();
  for (auto& link : links_) link->MarkDown();  // unblocks a stage waiting on its worker
  for (auto& q : queues_) q->Close();
  for (auto& t : stage_threads_) t.join();
}

void GrpcPipeline::Queue::Push(std::shared_ptr<Flight> f) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push_back(std::move(f));
  }
  cv_.notify_one();
}

std::shared_ptr<GrpcPipeline::Flight> GrpcPipeline::Queue::Pop(std::chrono::microseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !items_.empty() || closed_; });
  if (items_.empty()) return nullptr;
  auto f = std::move(items_.front());
  items_.pop_front();
  return f;
}

void GrpcPipeline::Queue::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

void GrpcPipeline::Submit(uint64_t tag, StepInput step) {
  auto flight = std::make_shared<Flight>();
  flight->result.tag = tag;
  flight->header = MakeStepRequest(step, ++step_id_);
  IpcTopology::Snapshot links = ipc_->Take();  // the whole way through with the links as now
  flight->ipc = std::move(links.ipc);
  flight->ipc_producer = std::move(links.producer);
  queues_[0]->Push(std::move(flight));
}

bool GrpcPipeline::Next(int timeout_ms, StepResult* result) {
  auto flight = queues_.back()->Pop(timeout_ms);
  if (!flight) return false;
  *result = std::move(flight->result);
  return true;
}

bool GrpcPipeline::StageStep(size_t i, const std::shared_ptr<Flight>& f, std::vector<float>* out) {
  // Ring slots cycle with the tag; kIpcRing bounds the micro-batches in flight.
  const int slot = int(f->result.tag % kIpcRing);
  auto& h = f->header;
  const bool in = i > 0 && f->ipc[i - 1];
  if (in) {
    h.set_ipc_in_slot(slot);
  } else {
    h.clear_ipc_in_slot();
  }
  h.set_ipc_in_instance(in ? f->ipc_producer[i - 1] : 0);
  const bool early = f->ipc[i] != 0;
  if (early) {
    h.set_ipc_out_slot(slot);
  } else {
    h.clear_ipc_out_slot();
  }
  absl::Status s = links_[i]->Send(h, f->hidden);
  if (s.ok() && early) {
    // The next worker waits for this one's handover on its host: start it now.
    f->hidden.clear();
    {
      std::lock_guard<std::mutex> lock(f->mu);
      ++f->pending;
    }
    queues_[i + 1]->Push(f);
    std::vector<SampledToken> none;
    s = links_[i]->Receive(out, &none);
    if (!s.ok()) NoteFailure(i, in);
    std::lock_guard<std::mutex> lock(f->mu);
    if (f->late_status.ok()) f->late_status = s;
    --f->pending;
    f->answered.notify_all();
    return false;
  }
  if (s.ok()) s = links_[i]->Receive(out, &f->result.sampled);
  if (!s.ok()) {
    NoteFailure(i, in);
    f->result.status = s;
  }
  f->hidden.swap(*out);
  return true;
}

void GrpcPipeline::NoteFailure(size_t i, bool ipc_in) {
  if (!links_[i]->up()) monitor_->UpdateReady();
  // If the IPC connection is stale (a neighbour restarted): gRPC until the monitor connects
  // the rings again.
  if (ipc_in) ipc_->Drop(i - 1);
}

// Stage i's thread: takes micro-batches in order, runs them on its worker, hands them on. A
// failed micro-batch passes the remaining stages untouched, carrying its error.
void GrpcPipeline::RunStage(size_t i) {
  const bool last = i + 1 == links_.size();
  std::vector<float> out;
  while (true) {
    auto flight = queues_[i]->Pop(1000);
    if (!flight) {
      if (stopping_) return;
      continue;
    }
    if (flight->result.status.ok() && !StageStep(i, flight, &out)) continue;  // handed on
    if (last) {
      // Stages that handed the flight on early answer soon after (they only queue their work).
      std::unique_lock<std::mutex> lock(flight->mu);
      flight->answered.wait(lock, [&] { return flight->pending == 0; });
      // An earlier stage's error is the cause of any later one (e.g. a handover that failed).
      if (!flight->late_status.ok()) flight->result.status = flight->late_status;
    }
    queues_[i + 1]->Push(std::move(flight));
  }
}

void GrpcPipeline::RunOnlyStage() {
  WorkerLink& link = *links_[0];
  std::deque<std::shared_ptr<Flight>> sent;  // sent, not answered yet; oldest first
  std::vector<float> out;
  const auto send = [&](const std::shared_ptr<Flight>& f) {
    auto& h = f->header;
    h.clear_ipc_in_slot();
    h.set_ipc_in_instance(0);
    h.clear_ipc_out_slot();
    if (f->result.status.ok()) f->result.status = link.Send(h, f->hidden);
    if (!f->result.status.ok()) NoteFailure(0, false);
    sent.push_back(f);
  };
  while (true) {
    if (sent.empty()) {
      auto f = queues_[0]->Pop(1000);
      if (!f) {
        if (stopping_) return;
        continue;
      }
      send(f);
    }
    // While the worker runs the step, the next one (decode ahead) may already be on its way.
    if (sent.size() == 1 && sent.front()->result.status.ok()) {
      if (auto next = queues_[0]->Pop(kAheadWait)) send(next);
    }
    std::shared_ptr<Flight> f = std::move(sent.front());
    sent.pop_front();
    if (f->result.status.ok()) {
      f->result.status = link.Receive(&out, &f->result.sampled);
      if (!f->result.status.ok()) NoteFailure(0, false);
    }
    queues_[1]->Push(std::move(f));
  }
}

}  // namespace lp
