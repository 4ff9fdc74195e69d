// The daemons' grpc.health.v1 service (common/health_service.h) through a real server and
// gRPC's generated client: NOT_SERVING from the first call until the daemon says it is ready,
// Watch follows every change, an unknown service is NOT_FOUND.
#include <grpcpp/grpcpp.h>

#include <chrono>

#include "common/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "layerpipe/v1/worker.grpc.pb.h"

namespace lp {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = StartServer("127.0.0.1:0", &service_, "layerpipe.v1.Worker", 1 << 20);
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(*started);
    stub_ = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_.port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_.grpc) server_.Shutdown();
  }
  static HealthCheckRequest Request(const std::string& service) {
    HealthCheckRequest req;
    req.set_service(service);
    return req;
  }
  // The status Check answers for `service`, or the call's error code as a negative number.
  int Check(const std::string& service) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    HealthCheckResponse resp;
    const grpc::Status s = stub_->Check(&ctx, Request(service), &resp);
    return s.ok() ? resp.status() : -s.error_code();
  }
  // A Watch of `service` on `ctx` (deadline 20 s).
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> Watch(grpc::ClientContext* ctx,
                                                                 const std::string& service) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return stub_->Watch(ctx, Request(service));
  }

  layerpipe::v1::Worker::Service service_;  // no method implemented: only its name counts here
  Server server_;
  std::unique_ptr<grpc::health::v1::Health::Stub> stub_;
};

TEST_F(HealthTest, NotServingUntilToldAndUnknownServicesAreNotFound) {
  EXPECT_EQ(Check(""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Check("layerpipe.v1.Worker"), HealthCheckResponse::NOT_SERVING);
  server_.SetServing(true);
  EXPECT_EQ(Check(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Check("layerpipe.v1.Worker"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Check("layerpipe.v1.Nothing"), -grpc::StatusCode::NOT_FOUND);
  server_.SetServing(false);
  EXPECT_EQ(Check(""), HealthCheckResponse::NOT_SERVING);
}

TEST_F(HealthTest, WatchSendsEveryChangeAndEndsAtShutdown) {
  grpc::ClientContext ctx;
  auto reader = Watch(&ctx, "layerpipe.v1.Worker");
  HealthCheckResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
  server_.SetServing(true);
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  server_.SetServing(false);
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);

  const auto start = std::chrono::steady_clock::now();
  server_.Shutdown();
  server_.grpc.reset();
  while (reader->Read(&resp)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2))
      << "a Watch must not hold the shutdown up";
}

TEST_F(HealthTest, WatchingAnUnknownServiceSaysSo) {
  grpc::ClientContext ctx;
  auto reader = Watch(&ctx, "layerpipe.v1.Nothing");
  HealthCheckResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  ctx.TryCancel();
}

}  // namespace
}  // namespace lp
