#include "server/service.h"

#include <unistd.h>

#include <algorithm>
#include <limits>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/log.h"
#include "schema/rpc_error.h"
#include "server/auth.h"
#include "server/service_internal.h"

namespace lw {

namespace {

std::string_view as_view(capnp::Data::Reader data) {
  return std::string_view(reinterpret_cast<const char*>(data.begin()), data.size());
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown-host";
  return buf;
}

// Normalizes an exception leaving a method: an lw::Error recovered from any wrapping gets
// its canonical description and type; Cap'n Proto's reader limits become LW-SRV-006.
kj::Exception normalize(kj::Exception&& e, const ServiceContext& ctx) {
  if (std::optional<Error> err = error_from_rpc_exception(e)) return to_rpc_exception(*err);
  const std::string_view d(e.getDescription().cStr(), e.getDescription().size());
  if (d.find("traversal limit") != std::string_view::npos ||
      d.find("too large") != std::string_view::npos) {
    return to_rpc_exception(Error(ErrorCode::kSrvMessageSize,
                                  "the request is larger than the server's max_message_bytes = " +
                                      std::to_string(ctx.config.max_message_bytes) + " (" +
                                      std::string(d) + ")"));
  }
  return kj::mv(e);
}

std::string code_of(const kj::Exception& e) {
  if (std::optional<Error> err = error_from_rpc_exception(e)) return std::string(err->id());
  return "transport";
}

class LayerServerImpl final : public schema::LayerServer::Server {
 public:
  explicit LayerServerImpl(ServiceContext& ctx) : ctx_(ctx) {}

  kj::Promise<void> handshake(HandshakeContext context) override {
    return run_call(ctx_, "handshake", [this, context]() mutable -> kj::Promise<void> {
      const auto request = context.getParams().getRequest();
      // The order is the protocol's (docs/WIRE_PROTOCOL.md "Handshake").
      check_protocol_version(request.getProtocolVersion(), schema::PROTOCOL_VERSION);
      ctx_.check_serving("handshake");
      auth_check(ctx_.auth_token, as_view(request.getAuthToken()));
      const std::string digest = request.getManifestDigest().cStr();
      if (digest != ctx_.model.digest) {
        throw Error(ErrorCode::kSrvDigest,
                    "handshake manifestDigest: the client holds manifest \"" + digest +
                        "\", this server serves \"" + ctx_.model.digest +
                        "\"; give both the same fragments/manifest.json");
      }
      const std::string arch = request.getArchitecture().cStr();
      if (!arch.empty() && arch != ctx_.model.preset) {
        throw Error(ErrorCode::kSrvArchitecture, "handshake architecture: the client expects \"" +
                                                     arch + "\", this server serves \"" +
                                                     ctx_.model.preset + "\"");
      }
      ReplyFormats formats;
      for (const auto encoding : request.getWantedEncodings()) {
        formats.zstd |= encoding == schema::Encoding::ZSTD;
        formats.shuffle_zstd |= encoding == schema::Encoding::SHUFFLE_ZSTD;
      }
      const uint64_t owner = ctx_.next_owner++;
      const std::string client = request.getClientName().cStr();
      logger("server")->info("connection {}: handshake from \"{}\"", owner, client);
      auto results = context.getResults();
      fill_description(ctx_, results.initResponse());
      results.setConnection(kj::heap<ConnectionImpl>(ctx_, owner, formats, client));
      ctx_.metrics.record_handshake();
      return kj::READY_NOW;
    });
  }

  kj::Promise<void> health(HealthContext context) override {
    const HealthStatus h = server_health(ctx_.metrics.snapshot(), ctx_.config.max_queued_calls);
    auto out = context.getResults().initHealth();
    out.setStatus(h.status);
    out.setReason(h.reason);
    return kj::READY_NOW;
  }

 private:
  ServiceContext& ctx_;
};

}  // namespace

kj::Promise<void> run_call(ServiceContext& ctx, const char* method,
                           kj::Function<kj::Promise<void>()> body) {
  ctx.call_started();
  auto start = [&]() -> kj::Promise<void> {
    try {
      return body();
    } catch (const Error& e) {
      return to_rpc_exception(e);
    } catch (const kj::Exception& e) {
      return kj::cp(e);
    } catch (const std::exception& e) {
      return to_rpc_exception(Error(ErrorCode::kInternal, std::string(method) + ": " + e.what()));
    }
  };
  return start()
      .catch_([&ctx, method](kj::Exception&& e) -> kj::Promise<void> {
        kj::Exception out = normalize(kj::mv(e), ctx);
        const std::string code = code_of(out);
        ctx.metrics.record_error(code);
        logger("server")->debug("{} failed: {}", method, out.getDescription().cStr());
        return kj::mv(out);
      })
      .attach(kj::defer([&ctx]() { ctx.call_finished(); }));
}

ServiceContext::ServiceContext(const ServerConfig& config_, std::string auth_token_,
                               ServerMetrics& metrics_, ComputeQueue& compute_,
                               ComputeWorkspace& workspace_)
    : config(config_),
      auth_token(std::move(auth_token_)),
      metrics(metrics_),
      compute(compute_),
      workspace(workspace_),
      registry(config_.max_sessions, std::chrono::seconds(config_.session_ttl_seconds)) {}

void ServiceContext::check_serving(const char* method) const {
  if (serving) return;
  throw Error(ErrorCode::kSrvBusy, std::string(method) + ": the server is not serving now (" +
                                       not_serving_reason + "); retry later or elsewhere");
}

DecodeLimits ServiceContext::forward_limits() const {
  DecodeLimits limits;
  limits.max_raw_bytes = std::min<uint64_t>(kWireMaxDataBytes, config.max_message_bytes);
  limits.expected_last_dim = model.hidden_size;
  limits.max_rows = config.max_tokens_per_call;
  return limits;
}

void ServiceContext::free_sessions(uint64_t owner, const std::vector<uint64_t>& ids) {
  update_session_gauge();
  if (ids.empty()) return;
  ComputeWorkspace& ws = workspace;
  ServerMetrics& m = metrics;
  compute.push(owner, [&ws, &m, ids]() {
    if (!ws.model) return;
    for (const uint64_t id : ids) {
      try {
        ws.model->close(id);
      } catch (const Error&) {
        // Never opened on the compute side (its open failed or was never run).
      }
    }
    m.set_kv_used_tokens(ws.model->kv_used_tokens());
  });
}

void ServiceContext::expire_sessions(SessionRegistry::Clock::time_point now) {
  const std::vector<uint64_t> ids = registry.expire(now);
  if (ids.empty()) return;
  for (const uint64_t id : ids) {
    logger("server")->info("session {}: expired after {} s idle", id, registry.ttl().count());
  }
  metrics.record_sessions_expired(ids.size());
  free_sessions(0, ids);
}

void ServiceContext::update_session_gauge() { metrics.set_sessions(registry.size()); }

void ServiceContext::call_started() {
  ++in_flight;
  metrics.add_in_flight(1);
}

void ServiceContext::call_finished() {
  --in_flight;
  metrics.add_in_flight(-1);
  if (in_flight == 0 && idle_fulfiller_.get() != nullptr) {
    idle_fulfiller_->fulfill();
    idle_fulfiller_ = nullptr;
  }
}

kj::Promise<void> ServiceContext::when_idle() {
  if (in_flight == 0) return kj::READY_NOW;
  auto paf = kj::newPromiseAndFulfiller<void>();
  idle_fulfiller_ = kj::mv(paf.fulfiller);
  return kj::mv(paf.promise);
}

capnp::Capability::Client make_layer_server(ServiceContext& context) {
  return schema::LayerServer::Client(kj::heap<LayerServerImpl>(context));
}

void fill_description(const ServiceContext& ctx, schema::HandshakeResponse::Builder out) {
  const ModelInfo& m = ctx.model;
  out.setProtocolVersion(schema::PROTOCOL_VERSION);
  out.setServerName("layerwire layer_server 0.1.0 on " + host_name());
  out.setArchitecture(m.preset);
  out.setManifestDigest(m.digest);
  out.setLayerBegin(m.layer_begin);
  out.setLayerEnd(m.layer_end);
  out.setHiddenSize(m.hidden_size);
  auto caps = out.initCapabilities();
  auto dtypes = caps.initDtypes(3);
  dtypes.set(0, schema::Dtype::F32);
  dtypes.set(1, schema::Dtype::F16);
  dtypes.set(2, schema::Dtype::BF16);
  auto encodings = caps.initEncodings(3);
  encodings.set(0, schema::Encoding::RAW);
  encodings.set(1, schema::Encoding::ZSTD);
  encodings.set(2, schema::Encoding::SHUFFLE_ZSTD);
  caps.setBackend(m.backend);
  caps.setDevice(m.device);
  auto limits = out.initLimits();
  limits.setMaxTokensPerCall(ctx.config.max_tokens_per_call);
  limits.setMaxMessageBytes(ctx.config.max_message_bytes);
  limits.setMaxSessions(ctx.config.max_sessions);
  limits.setKvBudgetTokens(m.kv_budget_tokens);
  limits.setSessionTtlSeconds(ctx.config.session_ttl_seconds);
}

// ---- Connection ----------------------------------------------------------------------

ConnectionImpl::ConnectionImpl(ServiceContext& ctx, uint64_t owner, ReplyFormats formats,
                               std::string client)
    : ctx_(ctx), owner_(owner), formats_(formats), client_(std::move(client)) {}

ConnectionImpl::~ConnectionImpl() {
  const std::vector<uint64_t> ids =
      ctx_.registry.remove_owner(owner_, "its connection was dropped or disconnected (connection " +
                                             std::to_string(owner_) + ")");
  if (!ids.empty()) {
    logger("server")->info("connection {} (\"{}\") gone: freeing {} session(s)", owner_, client_,
                           ids.size());
    ctx_.metrics.record_sessions_freed_on_disconnect(ids.size());
  }
  ctx_.free_sessions(owner_, ids);
}

kj::Promise<void> ConnectionImpl::openSession(OpenSessionContext context) {
  return run_call(ctx_, "openSession", [this, context]() mutable -> kj::Promise<void> {
    ctx_.check_serving("openSession");
    const uint64_t budget = ctx_.model.kv_budget_tokens;
    uint64_t max_tokens = context.getParams().getMaxTokens();
    if (max_tokens == 0) max_tokens = std::min<uint64_t>(budget, 0xffffffffu);
    if (max_tokens > budget) {
      throw Error(
          ErrorCode::kSrvSessionTokens,
          "openSession maxTokens = " + std::to_string(max_tokens) +
              " is above the server's KV budget kv_budget_tokens = " + std::to_string(budget));
    }
    ServiceContext& ctx = ctx_;
    const uint64_t id =
        ctx.registry.open(owner_, static_cast<uint32_t>(max_tokens), SessionRegistry::Clock::now());
    ctx.registry.find(id)->in_flight += 1;  // never expires while opening
    ctx.update_session_gauge();
    ComputeWorkspace& ws = ctx.workspace;
    auto job = [&ws, id]() -> uint64_t {
      const uint64_t used = ws.model->kv_used_tokens();
      const uint64_t total = ws.model->info().kv_budget_tokens;
      if (used >= total) {
        throw Error(ErrorCode::kKvExhausted,
                    "openSession: the KV cache is full (" + std::to_string(used) + " of " +
                        std::to_string(total) + " tokens in use); retry later");
      }
      ws.model->open(id);
      return ws.model->kv_used_tokens();
    };
    return ctx.compute.submit<uint64_t>(owner_, job)
        .then(
            [&ctx, context, id, owner = owner_, formats = formats_](uint64_t kv) mutable {
              ctx.metrics.set_kv_used_tokens(kv);
              ctx.metrics.record_session_opened();
              logger("server")->debug("connection {}: session {} opened", owner, id);
              auto results = context.getResults();
              results.setSession(kj::heap<SessionImpl>(ctx, owner, id, formats));
              results.setSessionId(id);
            },
            [&ctx, id](kj::Exception&& e) {
              ctx.registry.remove(id, "openSession failed");
              ctx.update_session_gauge();
              kj::throwFatalException(kj::mv(e));
            })
        .attach(kj::defer([&ctx, id]() {
          if (SessionRegistry::Entry* e = ctx.registry.find(id)) {
            e->in_flight -= 1;
            e->last_used = SessionRegistry::Clock::now();
          }
        }));
  });
}

kj::Promise<void> ConnectionImpl::info(InfoContext context) {
  return run_call(ctx_, "info", [this, context]() mutable -> kj::Promise<void> {
    if (!ctx_.serving && ctx_.model.digest.empty()) ctx_.check_serving("info");
    const MetricsSnapshot s = ctx_.metrics.snapshot();
    auto out = context.getResults().initInfo();
    fill_description(ctx_, out.initDescription());
    out.setOpenSessions(static_cast<uint32_t>(ctx_.registry.size()));
    out.setKvUsedTokens(s.kv_used_tokens);
    const HealthStatus h = server_health(s, ctx_.config.max_queued_calls);
    auto status = out.initStatus();
    status.setStatus(h.status);
    status.setReason(h.reason);
    return kj::READY_NOW;
  });
}

}  // namespace lw
