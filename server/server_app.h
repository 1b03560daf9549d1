// One layer_server process (or an in-process server in tests): startup (validate the config,
// load the auth token, bind the RPC and HTTP ports, then on the compute thread read the
// manifest, verify exactly the served layers' fragments, detect the architecture and load
// the layers), serving (RPC on the KJ event loop of the thread that calls run(), compute on
// the compute thread, HTTP on its own threads, the idle-session TTL timer) and the drain
// (stop accepting, refuse new calls, finish the calls in flight, free everything).
// Threading: run() on one thread; request_stop() and wait_ready() from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "common/config.h"
#include "server/metrics.h"

namespace kj {
template <typename T>
class CrossThreadPromiseFulfiller;
}

namespace lw {

struct ServerPorts {
  uint16_t rpc = 0;
  uint16_t http = 0;  // 0 when http_listen is empty
};

struct ServerAppOptions {
  // When set, written once the server is ready (atomically: a temporary file renamed into
  // place) as one line of JSON, {"rpc_port":N,"http_port":M,"pid":P}, and removed at exit.
  // docs/CONFIG.md, "Ephemeral ports".
  std::string port_file;
};

class ServerApp {
 public:
  explicit ServerApp(ServerConfig config, ServerAppOptions options = {});
  ~ServerApp();
  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  // Runs the server on the calling thread until request_stop(), then drains and returns.
  // Throws lw::Error when it cannot start: LW-CFG-001 / LW-AUTH-003 (config, token file),
  // LW-SRV-007 (listen), LW-SRV-008 (fragment verification, naming file and tensor),
  // LW-FRAG-* / LW-ARCH-* / LW-BACKEND-* (manifest, model, backend). Call once.
  void run();

  // Asks run() to drain and return. Thread-safe (signal handlers: call it from a thread
  // that waits for the signal, not from the handler). Before run() is ready, run() returns
  // right after loading.
  void request_stop();

  // Blocks until the server is ready (ports bound, model loaded) and returns its ports, or
  // nullopt when run() failed or finished first, or the timeout passed.
  std::optional<ServerPorts> wait_ready(std::chrono::milliseconds timeout);

  // Counters and phase (thread-safe).
  ServerMetrics& metrics() { return metrics_; }
  const ServerConfig& config() const { return config_; }

 private:
  void serve();
  void set_ready(ServerPorts ports);
  void write_port_file(const ServerPorts& ports) const;

  ServerConfig config_;
  ServerAppOptions options_;
  ServerMetrics metrics_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
  bool ready_ = false;
  bool finished_ = false;
  ServerPorts ports_;
  const kj::CrossThreadPromiseFulfiller<void>* stop_fulfiller_ = nullptr;  // while run() waits
};

}  // namespace lw
