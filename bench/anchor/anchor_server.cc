// anchor_server.cc -- the benchmark anchor of docs/architecture.md#performance-targets: a plain synchronous grpc++ server from
// Debian's libgrpc++ with its built-in health service and one trivial unary method. Not part of
// the suite; built by bench/rpc_bench.py only to measure against.
#include "echo.grpc.pb.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

namespace {

class EchoImpl final : public bench::v1::Echo::Service {
    grpc::Status Unary(grpc::ServerContext *, const bench::v1::EchoRequest *req,
                       bench::v1::EchoResponse *resp) override {
        resp->set_text(req->text());
        return grpc::Status::OK;
    }
};

}  // namespace

int main(int argc, char **argv) {
    std::string addr = argc > 1 ? argv[1] : "127.0.0.1:50099";
    grpc::EnableDefaultHealthCheckService(true);
    EchoImpl echo;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(addr, grpc::InsecureServerCredentials());
    builder.RegisterService(&echo);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server) {
        std::fprintf(stderr, "cannot listen on %s\n", addr.c_str());
        return 1;
    }
    std::printf("anchor listening on %s\n", addr.c_str());
    std::fflush(stdout);
    server->Wait();
    return 0;
}
