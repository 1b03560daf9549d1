// ServerMetrics: the Prometheus text (cumulative histogram, counters by direction, errors by
// code) and the health status derived from a snapshot; the framing-error translation.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "schema/rpc_error.h"
#include "server/message_stream.h"

namespace lw {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(ServerMetricsTest, PrometheusTextHasCumulativeBucketsAndLabels) {
  ServerMetrics m;
  WireStats in, out;
  in.raw_bytes = 4096;
  in.wire_bytes = 4096;
  out.raw_bytes = 2048;
  out.wire_bytes = 1000;
  out.compressed = 1;
  m.record_forward(30e-6, 1, in, out);   // bucket le=5e-05
  m.record_forward(200e-6, 2, in, out);  // bucket le=0.00025
  m.record_forward(20.0, 3, in, out);    // past the last bound
  m.record_error("LW-WIRE-003");
  m.record_error("LW-WIRE-003");
  m.record_error("transport");
  const std::string text = ServerMetrics::render_prometheus(m.snapshot());
  EXPECT_TRUE(has_line(text, "layerwire_forward_latency_seconds_bucket{le=\"2.5e-05\"} 0")) << text;
  EXPECT_TRUE(has_line(text, "layerwire_forward_latency_seconds_bucket{le=\"5e-05\"} 1"));
  EXPECT_TRUE(has_line(text, "layerwire_forward_latency_seconds_bucket{le=\"0.00025\"} 2"));
  EXPECT_TRUE(has_line(text, "layerwire_forward_latency_seconds_bucket{le=\"10\"} 2"));
  EXPECT_TRUE(has_line(text, "layerwire_forward_latency_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE(has_line(text, "layerwire_forward_latency_seconds_count 3"));
  EXPECT_TRUE(has_line(text, "layerwire_tokens_total 6"));
  EXPECT_TRUE(has_line(text, "layerwire_raw_bytes_total{direction=\"received\"} 12288"));
  EXPECT_TRUE(has_line(text, "layerwire_wire_bytes_total{direction=\"sent\"} 3000"));
  EXPECT_TRUE(has_line(text, "layerwire_compressed_tensors_total{direction=\"sent\"} 3"));
  EXPECT_TRUE(has_line(text, "layerwire_errors_total{code=\"LW-WIRE-003\"} 2"));
  EXPECT_TRUE(has_line(text, "layerwire_errors_total{code=\"transport\"} 1"));
  EXPECT_TRUE(has_line(text, "# TYPE layerwire_forward_latency_seconds histogram"));
  // Every sample line carries the prefix.
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    if (!line.empty() && line[0] != '#') {
      EXPECT_EQ(line.rfind("layerwire_", 0), 0u) << line;
    }
    pos = end + 1;
  }
}

TEST(ServerMetricsTest, HealthFollowsPhaseKvAndQueue) {
  MetricsSnapshot s;
  EXPECT_EQ(server_health(s, 10).status, "loading");
  s.phase = ServerPhase::Ok;
  s.model.kv_budget_tokens = 64;
  EXPECT_EQ(server_health(s, 10).status, "ok");
  EXPECT_EQ(server_health(s, 10).reason, "");
  s.kv_used_tokens = 64;
  HealthStatus h = server_health(s, 10);
  EXPECT_EQ(h.status, "degraded");
  EXPECT_NE(h.reason.find("64 of 64"), std::string::npos) << h.reason;
  s.kv_used_tokens = 0;
  s.calls_in_flight = 10;
  EXPECT_EQ(server_health(s, 10).status, "degraded");
  s.calls_in_flight = 0;
  s.phase = ServerPhase::Draining;
  s.reason = "shutting down";
  h = server_health(s, 10);
  EXPECT_EQ(h.status, "degraded");
  EXPECT_NE(h.reason.find("draining"), std::string::npos);
}

TEST(MessageStreamTest, ReadErrorsBecomeTypedCodes) {
  auto code = [](kj::Exception e) {
    auto err = error_from_rpc_exception(translate_read_error(kj::mv(e), 4096));
    return err ? std::string(err->id()) : std::string("none");
  };
  EXPECT_EQ(code(kj::Exception(kj::Exception::Type::FAILED, "x", 1,
                               kj::str("Message is too large. To increase the limit..."))),
            "LW-SRV-006");
  EXPECT_EQ(code(kj::Exception(kj::Exception::Type::FAILED, "x", 1,
                               kj::str("Message has too many segments."))),
            "LW-SRV-009");
  // A disconnect stays a disconnect.
  kj::Exception gone(kj::Exception::Type::DISCONNECTED, "x", 1, kj::str("Peer disconnected"));
  EXPECT_EQ(translate_read_error(kj::mv(gone), 4096).getType(), kj::Exception::Type::DISCONNECTED);
}

}  // namespace
}  // namespace lw
