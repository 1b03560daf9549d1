#include "server/forward_job.h"

#include "common/error.h"

namespace lw {

namespace {
uint64_t ns_since(std::chrono::steady_clock::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t)
          .count());
}
}  // namespace

ForwardResult run_forward(ComputeWorkspace& ws, const ForwardRequest& request) {
  LW_CHECK(ws.model != nullptr, "run_forward before the model is loaded");
  ForwardResult result;
  result.queue_ns = ns_since(request.queued_at);

  auto t0 = std::chrono::steady_clock::now();
  const WireTensorView view = wire_view(request.tensor);
  const uint64_t elems = ws.codec.check_header(view, request.limits);
  const uint64_t dim = ws.model->info().hidden_size;
  // check_header enforced rank 2 and the hidden size through limits.expected_last_dim.
  LW_CHECK(view.shape.size() == 2 && view.shape[1] == dim && elems == view.shape[0] * dim,
           "forward request header not checked against the hidden size");
  const uint64_t n = view.shape[0];
  ws.in.resize(elems);
  ws.out.resize(elems);
  ws.codec.decode_into(view, request.limits, ws.in, &result.received);
  result.decode_ns = ns_since(t0);

  t0 = std::chrono::steady_clock::now();
  ws.model->forward(request.session, request.start, static_cast<int32_t>(n), ws.in, ws.out);
  result.length = ws.model->length(request.session);
  result.kv_used_tokens = ws.model->kv_used_tokens();
  result.compute_ns = ns_since(t0);

  t0 = std::chrono::steady_clock::now();
  const uint64_t shape[2] = {n, dim};
  result.hidden = ws.codec.encode(ws.out.data(), shape, request.reply, &result.sent);
  result.encode_ns = ns_since(t0);
  result.tokens = n;
  return result;
}

}  // namespace lw
