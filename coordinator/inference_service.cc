// The public Inference service (see inference_service.h).
#include "coordinator/inference_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace lp {

InferenceService::InferenceService(Scheduler* scheduler, const GrpcPipeline* pipeline,
                                   ServedModel model, Telemetry* telemetry, const ApiTokens* tokens)
    : scheduler_(scheduler),
      pipeline_(pipeline),
      model_(std::move(model)),
      telemetry_(telemetry),
      tokens_(tokens) {}

bool InferenceService::Allows(std::string_view authorization) const {
  return tokens_ == nullptr || tokens_->Allows(authorization);
}

grpc::Status InferenceService::Authorize(const grpc::ServerContext& ctx) const {
  if (tokens_ == nullptr) return grpc::Status::OK;
  const auto& meta = ctx.client_metadata();
  const auto given = meta.find("authorization");
  if (given != meta.end() && Allows(std::string_view(given->second.data(), given->second.size()))) {
    return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      given == meta.end()
                          ? "this server asks for an API token (authorization: Bearer TOKEN)"
                          : "the API token is not valid");
}

std::string InferenceService::NewRequestId() {
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(RandomSeed()));
  return id;
}

uint64_t InferenceService::RandomSeed() {
  std::lock_guard<std::mutex> lock(rng_mu_);
  return rng_();
}

absl::StatusOr<std::string> InferenceService::RenderChat(const layerpipe::v1::Chat& chat) const {
  if (model_.chat_template == nullptr || model_.tokenizer == nullptr) {
    return absl::FailedPreconditionError(
        "this model directory has no tokenizer.json / chat template: send token ids");
  }
  std::vector<ChatMessage> messages;
  for (const auto& m : chat.messages()) messages.push_back({m.role(), m.content()});
  auto text =
      model_.chat_template->Render(messages, /*add_generation_prompt=*/true,
                                   chat.has_enable_thinking() ? chat.enable_thinking() : true);
  if (!text.ok()) return absl::InvalidArgumentError(text.status().message());
  return text;
}

absl::StatusOr<std::vector<int32_t>> InferenceService::PromptIds(
    const layerpipe::v1::GenerateRequest& r) const {
  switch (r.prompt_case()) {
    case layerpipe::v1::GenerateRequest::kTokenIds:
      return std::vector<int32_t>(r.token_ids().ids().begin(), r.token_ids().ids().end());
    case layerpipe::v1::GenerateRequest::kText:
      if (model_.tokenizer == nullptr) {
        return absl::FailedPreconditionError(
            "this model directory has no tokenizer.json: send token ids");
      }
      return model_.tokenizer->Encode(r.text());
    case layerpipe::v1::GenerateRequest::kChat: {
      auto text = RenderChat(r.chat());
      if (!text.ok()) return text.status();
      return model_.tokenizer->Encode(*text);
    }
    default:
      return absl::InvalidArgumentError("the prompt is empty: set text, token_ids or chat");
  }
}

absl::StatusOr<std::unique_ptr<GenerationStream>> InferenceService::Start(
    const layerpipe::v1::GenerateRequest& r, RequestTag tag) {
  auto refused = [&](const absl::Status& s) {
    if (telemetry_ != nullptr) telemetry_->RequestEnded(tag, {s.code(), "", 0, 0, -1, 0});
    return s;
  };
  auto prompt = PromptIds(r);
  if (!prompt.ok()) return refused(prompt.status());
  auto params = ValidateGenerate(r, *prompt, model_.validation, RandomSeed());
  if (!params.ok()) return refused(params.status());
  params->request_id = tag.id;
  auto output = OutputProcessor::Create(model_.tokenizer, {r.stop().begin(), r.stop().end()},
                                        params->stop_ids, int32_t(prompt->size()));
  if (!output.ok()) return refused(output.status());
  auto submitted = scheduler_->Submit(std::move(*prompt), std::move(*params));
  if (!submitted.ok()) return refused(submitted.status());
  return std::make_unique<GenerationStream>(std::move(*submitted), std::move(*output), r.logprobs(),
                                            telemetry_, std::move(tag));
}

grpc::Status InferenceService::Generate(
    grpc::ServerContext* ctx, const layerpipe::v1::GenerateRequest* r,
    grpc::ServerWriter<layerpipe::v1::GenerateResponse>* writer) {
  if (grpc::Status s = Authorize(*ctx); !s.ok()) return s;
  // The client's x-request-id names the request in the log, else one is made up.
  const auto& meta = ctx->client_metadata();
  const auto given = meta.find("x-request-id");
  const std::string id = given != meta.end()
                             ? std::string(given->second.data(), given->second.size())
                             : NewRequestId();
  auto stream = Start(*r, {"grpc", id});
  if (!stream.ok()) return ToGrpc(stream.status());
  while (true) {
    if (ctx->IsCancelled()) {
      (*stream)->Cancel();
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    }
    auto piece = (*stream)->Poll(50);
    if (!piece.ok()) return ToGrpc(piece.status());
    if (piece->send && !writer->Write(piece->response)) {
      (*stream)->Cancel();
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    }
    if (piece->finished) return grpc::Status::OK;
  }
}

grpc::Status InferenceService::Tokenize(grpc::ServerContext* ctx,
                                        const layerpipe::v1::TokenizeRequest* r,
                                        layerpipe::v1::TokenizeResponse* response) {
  if (grpc::Status s = Authorize(*ctx); !s.ok()) return s;
  if (model_.tokenizer == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this model directory has no tokenizer.json");
  }
  std::string text;
  if (r->input_case() == layerpipe::v1::TokenizeRequest::kChat) {
    auto rendered = RenderChat(r->chat());
    if (!rendered.ok()) return ToGrpc(rendered.status());
    text = *rendered;
    response->set_rendered(text);
  } else {
    text = r->text();
  }
  for (int32_t id : model_.tokenizer->Encode(text)) response->add_ids(id);
  return grpc::Status::OK;
}

grpc::Status InferenceService::GetModelInfo(grpc::ServerContext* ctx,
                                            const layerpipe::v1::GetModelInfoRequest*,
                                            layerpipe::v1::ModelInfo* response) {
  if (grpc::Status s = Authorize(*ctx); !s.ok()) return s;
  *response = model_.info;
  return grpc::Status::OK;
}

grpc::Status InferenceService::ListWorkers(grpc::ServerContext* ctx,
                                           const layerpipe::v1::ListWorkersRequest*,
                                           layerpipe::v1::ListWorkersResponse* response) {
  if (grpc::Status s = Authorize(*ctx); !s.ok()) return s;
  response->set_running_requests(scheduler_->active());
  response->set_queued_requests(scheduler_->queued());
  response->set_paused_requests(scheduler_->paused());
  response->set_resumed_requests(scheduler_->resumed());
  const KvBlockReport kv = scheduler_->kv_blocks();
  response->set_kv_blocks_total(kv.total);
  response->set_kv_blocks_used(kv.used);
  response->set_kv_blocks_cached(kv.cached);
  response->set_kv_block_tokens(scheduler_->limits().kv_block_tokens);
  response->set_prefix_hit_tokens(kv.prefix_hit_tokens);
  response->set_prefill_tokens(kv.prefill_tokens);
  response->set_preempted_requests(kv.preempted);
  const auto& links = pipeline_->links();
  for (size_t i = 0; i < links.size(); ++i) {
    const Stage& stage = model_.plan.stages[i];
    auto* w = response->add_workers();
    w->set_name(stage.worker);
    w->set_device(stage.device);
    w->set_address(stage.address);
    w->set_layer_begin(stage.begin);
    w->set_layer_end(stage.end);
    w->set_embed(stage.embed);
    w->set_head(stage.head);
    w->set_transport(pipeline_->Transport(i));
    if (!links[i]->up()) {
      w->set_state("unreachable");
      continue;
    }
    auto stats = links[i]->Stats(1000);
    w->set_state(stats.ok() ? "ready" : "unreachable");
    if (stats.ok()) {
      w->set_active_sequences(stats->active_sequences());
      w->set_cached_tokens(stats->cached_tokens());
      w->set_steps(stats->steps());
    }
  }
  return grpc::Status::OK;
}

}  // namespace lp
