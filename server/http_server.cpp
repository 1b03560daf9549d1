#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/log.h"

namespace lw {

std::string http_health_json(const MetricsSnapshot& s, const ServerConfig& config) {
  const HealthStatus h = server_health(s, config.max_queued_calls);
  nlohmann::json j = {{"status", h.status}, {"reason", h.reason}};
  return j.dump();
}

std::string http_info_json(const MetricsSnapshot& s, const ServerConfig& config) {
  const HealthStatus h = server_health(s, config.max_queued_calls);
  nlohmann::json j;
  j["status"] = h.status;
  j["reason"] = h.reason;
  j["model_ready"] = s.model_ready;
  if (s.model_ready) {
    const ModelInfo& m = s.model;
    j["preset"] = m.preset;
    j["digest"] = m.digest;
    j["n_layers"] = m.n_layers;
    j["layer_begin"] = m.layer_begin;
    j["layer_end"] = m.layer_end;  // served layers [layer_begin, layer_end)
    j["hidden_size"] = m.hidden_size;
    j["backend"] = m.backend;
    j["device"] = m.device;
    j["compute"] = m.compute;
    j["weight_bytes"] = m.weight_bytes;
  }
  j["limits"] = {{"max_tokens_per_call", config.max_tokens_per_call},
                 {"max_message_bytes", config.max_message_bytes},
                 {"max_sessions", config.max_sessions},
                 {"kv_budget_tokens", s.model.kv_budget_tokens},
                 {"session_ttl_seconds", config.session_ttl_seconds},
                 {"max_queued_calls", config.max_queued_calls}};
  j["sessions"] = {{"open", s.sessions_open},
                   {"opened", s.sessions_opened},
                   {"expired", s.sessions_expired},
                   {"freed_on_disconnect", s.sessions_freed_on_disconnect}};
  j["kv_used_tokens"] = s.kv_used_tokens;
  j["connections"] = s.connections_open;
  j["forward_calls"] = s.forward_calls;
  j["config"] = nlohmann::json::parse(server_config_to_json(config));
  return j.dump(2);
}

struct HttpServer::Impl {
  Impl(const ServerConfig& c, ServerMetrics& m) : config(c), metrics(m) {}
  const ServerConfig& config;
  ServerMetrics& metrics;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
};

HttpServer::HttpServer(const ServerConfig& config, ServerMetrics& metrics)
    : impl_(std::make_unique<Impl>(config, metrics)) {
  Impl* impl = impl_.get();
  impl->server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  impl->server.Get("/health", [impl](const httplib::Request&, httplib::Response& res) {
    const MetricsSnapshot s = impl->metrics.snapshot();
    const HealthStatus h = server_health(s, impl->config.max_queued_calls);
    res.status = h.status == "loading" ? 503 : 200;
    res.set_content(http_health_json(s, impl->config), "application/json");
  });
  impl->server.Get("/metrics", [impl](const httplib::Request&, httplib::Response& res) {
    res.set_content(ServerMetrics::render_prometheus(impl->metrics.snapshot()),
                    "text/plain; version=0.0.4");
  });
  impl->server.Get("/info", [impl](const httplib::Request&, httplib::Response& res) {
    res.set_content(http_info_json(impl->metrics.snapshot(), impl->config), "application/json");
  });
}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::start(const std::string& address) {
  const size_t colon = address.rfind(':');
  LW_CHECK(colon != std::string::npos, "http_listen not validated: " + address);
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const int port = std::stoi(address.substr(colon + 1));
  int bound = port;
  bool ok;
  if (port == 0) {
    bound = impl_->server.bind_to_any_port(host);
    ok = bound > 0;
  } else {
    ok = impl_->server.bind_to_port(host, port);
  }
  if (!ok) {
    throw Error(ErrorCode::kSrvListen,
                "http_listen \"" + address +
                    "\": cannot bind (address in use, not a local address, or no permission)");
  }
  Impl* impl = impl_.get();
  impl->thread = std::thread([impl] {
    impl->server.listen_after_bind();
    impl->listen_returned = true;
  });
  return static_cast<uint16_t>(bound);
}

void HttpServer::stop() {
  if (!impl_) return;
  if (impl_->thread.joinable()) {
    // stop() is a no-op until the listen loop runs: wait for it to start (or to have failed).
    while (!impl_->server.is_running() && !impl_->listen_returned) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    impl_->server.stop();
    impl_->thread.join();
  }
}

}  // namespace lw
