#include "server/server_app.h"

#include <kj/async-io.h>
#include <kj/async.h>
#include <kj/common.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"
#include "schema/rpc_error.h"
#include "server/auth.h"
#include "server/compute_queue.h"
#include "server/forward_job.h"
#include "server/http_server.h"
#include "server/rpc_acceptor.h"
#include "server/service.h"

namespace lw {

namespace {

kj::Promise<void> ttl_loop(kj::Timer& timer, ServiceContext& ctx, kj::Duration period) {
  return timer.afterDelay(period).then([&timer, &ctx, period]() {
    ctx.expire_sessions(SessionRegistry::Clock::now());
    return ttl_loop(timer, ctx, period);
  });
}

// A quarter of the TTL, between 50 ms and 5 s: a session lives at most ~1.25 x the TTL.
kj::Duration ttl_period(uint32_t ttl_seconds) {
  const int64_t ms = std::clamp<int64_t>(int64_t{ttl_seconds} * 250, 50, 5000);
  return ms * kj::MILLISECONDS;
}

}  // namespace

ServerApp::ServerApp(ServerConfig config, ServerAppOptions options)
    : config_(std::move(config)), options_(std::move(options)) {}

ServerApp::~ServerApp() = default;

void ServerApp::request_stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_requested_) return;
  stop_requested_ = true;
  if (stop_fulfiller_ != nullptr) stop_fulfiller_->fulfill();
}

std::optional<ServerPorts> ServerApp::wait_ready(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return ready_ || finished_; });
  if (ready_ && !finished_) return ports_;
  return std::nullopt;
}

void ServerApp::set_ready(ServerPorts ports) {
  std::lock_guard<std::mutex> lock(mu_);
  ports_ = ports;
  ready_ = true;
  cv_.notify_all();
}

void ServerApp::write_port_file(const ServerPorts& ports) const {
  if (options_.port_file.empty()) return;
  const std::string text = "{\"rpc_port\":" + std::to_string(ports.rpc) +
                           ",\"http_port\":" + std::to_string(ports.http) +
                           ",\"pid\":" + std::to_string(::getpid()) + "}\n";
  const std::filesystem::path final_path(options_.port_file);
  const std::filesystem::path tmp = final_path.string() + ".tmp-" + std::to_string(::getpid());
  write_text_file(tmp, text);
  std::error_code ec;
  std::filesystem::rename(tmp, final_path, ec);
  if (ec) {
    throw Error(ErrorCode::kIoRename, "port file " + final_path.string() + ": cannot rename " +
                                          tmp.string() + " into place: " + ec.message());
  }
}

void ServerApp::run() {
  try {
    serve();
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    cv_.notify_all();
    throw;
  }
  std::lock_guard<std::mutex> lock(mu_);
  finished_ = true;
  cv_.notify_all();
}

void ServerApp::serve() {
  auto log = logger("server");
  server_config_validate(config_);
  std::string token;
  if (!config_.auth_token_file.empty()) token = auth_load_token(config_.auth_token_file);
  log->info("starting: fragments {}, layers {}, backend {}, compute {}, rpc {}, http {}, auth {}",
            config_.fragments_dir, config_.layers.empty() ? "all" : config_.layers, config_.backend,
            config_.compute, config_.rpc_listen,
            config_.http_listen.empty() ? "off" : config_.http_listen,
            token.empty() ? "off" : "token file " + config_.auth_token_file);

  kj::AsyncIoContext io = kj::setupAsyncIo();
  ComputeWorkspace workspace;
  ComputeQueue compute(config_.max_queued_calls);
  ServiceContext ctx(config_, token, metrics_, compute, workspace);

  auto stop_paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_requested_) {
      stop_paf.fulfiller->fulfill();
    } else {
      stop_fulfiller_ = stop_paf.fulfiller.get();
    }
  }
  KJ_DEFER({
    std::lock_guard<std::mutex> lock(mu_);
    stop_fulfiller_ = nullptr;
  });
  kj::ForkedPromise<void> stop = stop_paf.promise.fork();

  RpcAcceptor acceptor(*io.provider, make_layer_server(ctx), config_.max_message_bytes, metrics_);
  HttpServer http(config_, metrics_);
  // Teardown, in this order on every path: drop the RPC connections (their sessions queue
  // their frees), free the model on the compute thread, join it, stop HTTP.
  KJ_DEFER({
    acceptor.disconnect_all();
    compute.push(0, [&workspace]() { workspace.model.reset(); });
    compute.stop();
    http.stop();
  });

  ServerPorts ports;
  ports.rpc = acceptor.bind(config_.rpc_listen, io.waitScope);
  if (!config_.http_listen.empty()) ports.http = http.start(config_.http_listen);
  acceptor.start();
  metrics_.set_phase(ServerPhase::Loading, "verifying and loading the fragments of layers " +
                                               (config_.layers.empty() ? "all" : config_.layers));
  log->info("listening: rpc port {}, http port {}; loading", ports.rpc, ports.http);

  // Load on the compute thread (the model lives there); the loop keeps answering health.
  const ServerConfig* config = &config_;
  ComputeWorkspace* ws = &workspace;
  auto loaded = compute.submit<ModelInfo>(
      0,
      [config, ws]() {
        ws->model = load_compute_model(*config);
        return ws->model->info();
      },
      /*bounded=*/false);
  kj::Maybe<ModelInfo> model;
  try {
    loaded.then([&model](ModelInfo m) { model = kj::mv(m); })
        .exclusiveJoin(stop.addBranch())
        .wait(io.waitScope);
  } catch (const kj::Exception& e) {
    const std::optional<Error> err = error_from_rpc_exception(e);
    metrics_.set_phase(ServerPhase::Failed, err ? err->what() : e.getDescription().cStr());
    if (err) throw *err;
    throw Error(ErrorCode::kInternal, std::string("loading: ") + e.getDescription().cStr());
  }

  KJ_IF_MAYBE (info, model) {
    ctx.model = *info;
    ctx.serving = true;
    metrics_.set_model(*info);
    metrics_.set_phase(ServerPhase::Ok, "");
    log->info("ready: {} layers {}-{} of {}, hidden {}, backend {} ({}), KV budget {} tokens",
              info->preset, info->layer_begin, info->layer_end - 1, info->n_layers,
              info->hidden_size, info->backend, info->device, info->kv_budget_tokens);
    write_port_file(ports);
    set_ready(ports);

    kj::Promise<void> ttl = kj::READY_NOW;
    if (config_.session_ttl_seconds != 0) {
      ttl =
          ttl_loop(io.provider->getTimer(), ctx, ttl_period(config_.session_ttl_seconds))
              .eagerlyEvaluate([](kj::Exception&& e) {
                logger("server")->error("session TTL timer failed: {}", e.getDescription().cStr());
              });
    }
    stop.addBranch().wait(io.waitScope);

    // Drain: refuse new work, close the port, let the calls in flight finish.
    log->info("draining: {} call(s) in flight, {} session(s) open", ctx.in_flight,
              ctx.registry.size());
    ctx.serving = false;
    ctx.not_serving_reason = "draining: the server is shutting down";
    metrics_.set_phase(ServerPhase::Draining, "shutting down: finishing the calls in flight");
    acceptor.stop_accepting();
    bool timed_out = false;
    kj::Timer& timer = io.provider->getTimer();
    ctx.when_idle()
        .then([&acceptor, &timer]() { return acceptor.when_flushed(timer); })
        .exclusiveJoin(io.provider->getTimer()
                           .afterDelay(config_.drain_timeout_seconds * kj::SECONDS)
                           .then([&timed_out]() { timed_out = true; }))
        .wait(io.waitScope);
    if (timed_out) {
      log->warn("drain_timeout_seconds = {} passed: cancelling {} call(s) still in flight",
                config_.drain_timeout_seconds, ctx.in_flight);
    }
  } else {
    log->info("stop requested while loading: exiting without serving");
  }

  if (!options_.port_file.empty()) {
    std::error_code ec;
    std::filesystem::remove(options_.port_file, ec);
  }
  log->info("stopped");
}

}  // namespace lw
