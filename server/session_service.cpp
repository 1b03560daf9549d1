// Session: forward, truncate and close of one KV-cache session (declared in
// server/service_internal.h).

// GCC 12 reports a false -Wmaybe-uninitialized inside kj::_::NullableValue when a promise
// carries a class with std::vector members (kj/async-inl.h, XThreadFulfiller::fulfill).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <chrono>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/log.h"
#include "schema/wire_convert.h"
#include "server/service_internal.h"

namespace lw {

namespace {

using Clock = SessionRegistry::Clock;

// Marks a call on session `id` done: one less in flight, and the idle clock restarts.
auto session_call_done(ServiceContext& ctx, uint64_t id) {
  return kj::defer([&ctx, id]() {
    if (SessionRegistry::Entry* e = ctx.registry.find(id)) {
      if (e->in_flight > 0) e->in_flight -= 1;
      e->last_used = Clock::now();
    }
  });
}

}  // namespace

SessionImpl::SessionImpl(ServiceContext& ctx, uint64_t owner, uint64_t id, ReplyFormats formats)
    : ctx_(ctx), owner_(owner), id_(id), formats_(formats) {}

SessionImpl::~SessionImpl() {
  if (ctx_.registry.remove(id_, "released by the client (the Session capability was dropped)")) {
    ctx_.metrics.record_sessions_freed_on_disconnect(1);
    ctx_.free_sessions(owner_, {id_});
  }
}

SessionRegistry::Entry& SessionImpl::entry(const char* method) {
  if (SessionRegistry::Entry* e = ctx_.registry.find(id_)) return *e;
  throw Error(ErrorCode::kEngineSession, std::string(method) + ": session " + std::to_string(id_) +
                                             " is not open (" + ctx_.registry.closed_reason(id_) +
                                             ")");
}

EncodeOptions SessionImpl::reply_options(WireDtype dtype) const {
  EncodeOptions options;
  options.dtype = dtype;
  options.zstd_level = ctx_.config.zstd_level;
  options.min_compress_bytes = ctx_.config.compress_min_bytes;
  const std::string& mode = ctx_.config.compression;
  options.mode = CompressionMode::Off;
  if (mode == "auto" && formats_.shuffle_zstd) options.mode = CompressionMode::Auto;
  if (mode == "shuffle-zstd" && formats_.shuffle_zstd) options.mode = CompressionMode::ShuffleZstd;
  if (mode == "zstd" && formats_.zstd) options.mode = CompressionMode::Zstd;
  return options;
}

kj::Promise<void> SessionImpl::forward(ForwardContext context) {
  const auto arrival = Clock::now();
  return run_call(ctx_, "forward", [this, context, arrival]() mutable -> kj::Promise<void> {
    ctx_.check_serving("forward");
    SessionRegistry::Entry& e = entry("forward");
    const auto params = context.getParams();
    const uint32_t start = params.getStartPos();
    if (!params.hasHidden()) {
      throw Error(ErrorCode::kWireShape, "forward: the hidden tensor is missing");
    }
    const uint16_t reply_dtype = static_cast<uint16_t>(params.getReplyDtype());
    if (wire_dtype_size(static_cast<WireDtype>(reply_dtype)) == 0) {
      throw Error(ErrorCode::kWireDtype, "forward replyDtype = " + std::to_string(reply_dtype) +
                                             " is not f32 (0), f16 (1) or bf16 (2)");
    }

    // Header checks here, on the loop: a bad request never reaches the compute queue.
    auto request = std::make_shared<ForwardRequest>();
    request->limits = ctx_.forward_limits();
    const WireTensorView view = view_tensor(params.getHidden(), request->limits);
    ctx_.codec.check_header(view, request->limits);
    const uint64_t n = view.shape[0];
    if (static_cast<uint64_t>(start) + n > e.max_tokens) {
      throw Error(ErrorCode::kSrvSessionTokens,
                  "forward session " + std::to_string(id_) + ": positions " +
                      std::to_string(start) + ".." + std::to_string(start + n - 1) +
                      " go past the session's maxTokens = " + std::to_string(e.max_tokens));
    }
    request->session = id_;
    request->start = static_cast<int32_t>(start);
    request->reply = reply_options(static_cast<WireDtype>(reply_dtype));
    request->tensor.dtype = view.dtype;
    request->tensor.shape = view.shape;
    request->tensor.encoding = view.encoding;
    request->tensor.raw_size = view.raw_size;
    request->tensor.xxh3_64 = view.xxh3_64;
    request->tensor.data.assign(view.data.begin(), view.data.end());
    request->queued_at = Clock::now();

    e.in_flight += 1;
    e.last_used = request->queued_at;
    ComputeWorkspace& ws = ctx_.workspace;
    ServiceContext& ctx = ctx_;
    return ctx.compute
        .submit<ForwardResult>(owner_, [&ws, request]() { return run_forward(ws, *request); })
        .then([&ctx, context, arrival](ForwardResult r) mutable {
          auto results = context.getResults();
          write_tensor(results.initHidden(), r.hidden);
          results.setLength(static_cast<uint32_t>(r.length));
          auto t = results.initTimings();
          t.setQueueNs(r.queue_ns);
          t.setDecodeNs(r.decode_ns);
          t.setComputeNs(r.compute_ns);
          t.setEncodeNs(r.encode_ns);
          const auto total =
              std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - arrival);
          t.setTotalNs(static_cast<uint64_t>(total.count()));
          ctx.metrics.record_forward(static_cast<double>(total.count()) * 1e-9, r.tokens,
                                     r.received, r.sent);
          ctx.metrics.set_kv_used_tokens(r.kv_used_tokens);
        })
        .attach(session_call_done(ctx, id_));
  });
}

kj::Promise<void> SessionImpl::truncate(TruncateContext context) {
  return run_call(ctx_, "truncate", [this, context]() mutable -> kj::Promise<void> {
    ctx_.check_serving("truncate");
    SessionRegistry::Entry& e = entry("truncate");
    const int64_t position = context.getParams().getPosition();
    e.in_flight += 1;
    ComputeWorkspace& ws = ctx_.workspace;
    ServerMetrics& metrics = ctx_.metrics;
    const uint64_t id = id_;
    auto job = [&ws, &metrics, id, position]() -> int64_t {
      ws.model->truncate(id, position);
      metrics.set_kv_used_tokens(ws.model->kv_used_tokens());
      return ws.model->length(id);
    };
    return ctx_.compute.submit<int64_t>(owner_, job)
        .then([context](int64_t length) mutable {
          context.getResults().setLength(static_cast<uint32_t>(length));
        })
        .attach(session_call_done(ctx_, id_));
  });
}

kj::Promise<void> SessionImpl::close(CloseContext context) {
  (void)context;
  return run_call(ctx_, "close", [this]() -> kj::Promise<void> {
    entry("close");
    ctx_.registry.remove(id_, "closed by the client");
    ctx_.update_session_gauge();
    ComputeWorkspace& ws = ctx_.workspace;
    ServerMetrics& metrics = ctx_.metrics;
    const uint64_t id = id_;
    auto job = [&ws, &metrics, id]() -> uint64_t {
      ws.model->close(id);
      const uint64_t used = ws.model->kv_used_tokens();
      metrics.set_kv_used_tokens(used);
      return used;
    };
    // Unbounded: freeing must not be refused when the queue is full.
    return ctx_.compute.submit<uint64_t>(owner_, job, /*bounded=*/false).ignoreResult();
  });
}

}  // namespace lw
