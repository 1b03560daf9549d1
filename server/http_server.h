// The HTTP control plane of layer_server (cpp-httplib, on its own threads): GET /health
// (JSON {"status": "ok"|"loading"|"degraded", "reason": ...}; 200 when ok or degraded, 503
// while loading), GET /metrics (Prometheus text, names prefixed layerwire_), GET /info (JSON:
// preset, layers, digest, limits, sessions, the effective config without the token).
// Handlers only read ServerMetrics snapshots: they never touch the event loop or the device.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/config.h"
#include "server/metrics.h"

namespace lw {

class HttpServer {
 public:
  // `config` and `metrics` must outlive the server.
  HttpServer(const ServerConfig& config, ServerMetrics& metrics);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds "host:port" (port 0 = a free port), starts serving on its own threads and returns
  // the bound port. Throws LW-SRV-007 naming the address when it cannot bind.
  uint16_t start(const std::string& address);
  // Stops accepting and joins the threads. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The bodies the endpoints serve, exposed for tests.
std::string http_health_json(const MetricsSnapshot& s, const ServerConfig& config);
std::string http_info_json(const MetricsSnapshot& s, const ServerConfig& config);

}  // namespace lw
