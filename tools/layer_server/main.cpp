// layer_server: serves a range of a model's transformer layers over Cap'n Proto RPC, with an
// HTTP control plane. `layer_server --config config/server.json`; every config field can be
// overridden by a flag of the same name with dashes (docs/CONFIG.md). SIGTERM / SIGINT
// drain: stop accepting, finish the calls in flight, exit 0.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/error.h"
#include "common/log.h"
#include "server/server_app.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitBadInput = 3;
constexpr int kExitIo = 4;
constexpr int kExitInternal = 70;

constexpr const char* kFooter =
    "Examples:\n"
    "  layer_server --config config/server.json\n"
    "  layer_server --fragments-dir /srv/model.frag --layers 0-15 --rpc-listen 0.0.0.0:7001 \\\n"
    "               --http-listen 0.0.0.0:7002 --backend cuda --device 0 \\\n"
    "               --auth-token-file /etc/layerwire/token\n"
    "  layer_server --config server.json --rpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \\\n"
    "               --port-file /tmp/ports.json   # free ports, written once ready\n"
    "  layer_server --config server.json --print-config   # the effective config, then exit\n"
    "\n"
    "Every config field (docs/CONFIG.md) has a flag of the same name with dashes; flags\n"
    "override the file, the file overrides the defaults.\n"
    "Exit codes: 0 success (including a drain after SIGTERM/SIGINT); 2 bad command line\n"
    "(LW-CLI-001); 3 bad, corrupt or unsupported input: config (LW-JSON-*, LW-CFG-001), token\n"
    "file (LW-AUTH-003), fragments that fail verification (LW-SRV-008), model or backend\n"
    "(LW-FRAG-*, LW-ARCH-*, LW-BACKEND-001); 4 I/O error: cannot listen (LW-SRV-007), cannot\n"
    "read a file (LW-IO-*); 70 internal error. Errors print as\n"
    "\"layer_server: error: LW-XXX-NNN: message\".";

int exit_code_for(const lw::Error& e) {
  if (e.code() == lw::ErrorCode::kCliArgument) return kExitUsage;
  switch (e.kind()) {
    case lw::ErrorKind::BadInput:
    case lw::ErrorKind::Corrupt:
    case lw::ErrorKind::NotFound:
    case lw::ErrorKind::Unsupported:
      return kExitBadInput;
    case lw::ErrorKind::Io:
      return kExitIo;
    case lw::ErrorKind::Overloaded:
    case lw::ErrorKind::Internal:
      return kExitInternal;
  }
  return kExitInternal;
}

// One flag per ServerConfig field; after parsing, the flags given override the loaded config.
class ConfigFlags {
 public:
  explicit ConfigFlags(CLI::App& app) : app_(app) {}

  template <typename T>
  void add(const std::string& key, T lw::ServerConfig::*member, const std::string& help) {
    std::string flag = "--" + key;
    for (char& c : flag) c = c == '_' ? '-' : c;
    CLI::Option* option =
        app_.add_option(flag, values_.*member, help + " (config \"" + key + "\")");
    option->capture_default_str();
    appliers_.push_back([option, member, this](lw::ServerConfig& config) {
      if (option->count() > 0) config.*member = values_.*member;
    });
  }
  void apply(lw::ServerConfig& config) const {
    for (const auto& apply : appliers_) apply(config);
  }

 private:
  CLI::App& app_;
  lw::ServerConfig values_;
  std::vector<std::function<void(lw::ServerConfig&)>> appliers_;
};

void add_config_flags(ConfigFlags& f) {
  using C = lw::ServerConfig;
  f.add("fragments_dir", &C::fragments_dir,
        "folder with manifest.json and the fragment files of the served layers");
  f.add("layers", &C::layers, "served layers \"A-B\" (inclusive) or \"N\"; empty = all");
  f.add("rpc_listen", &C::rpc_listen, "Cap'n Proto RPC address host:port (port 0 = free port)");
  f.add("http_listen", &C::http_listen,
        "HTTP /health /metrics /info address host:port (0 = free port); empty = off");
  f.add("backend", &C::backend, "compute backend: cpu or cuda");
  f.add("device", &C::device, "device index of the cuda backend");
  f.add("threads", &C::threads, "cpu backend threads (0 = every core)");
  f.add("auth_token_file", &C::auth_token_file,
        "file holding the shared token (chmod 600); empty = no authentication");
  f.add("kv_budget_tokens", &C::kv_budget_tokens, "KV cache budget in tokens, all sessions");
  f.add("kv_block_size", &C::kv_block_size, "tokens per KV cache block (1..256)");
  f.add("max_sessions", &C::max_sessions, "open sessions over all clients");
  f.add("session_ttl_seconds", &C::session_ttl_seconds,
        "idle seconds after which a session is closed (0 = never)");
  f.add("max_tokens_per_call", &C::max_tokens_per_call, "rows of one forward tensor");
  f.add("max_message_bytes", &C::max_message_bytes, "largest RPC message accepted, bytes");
  f.add("max_queued_calls", &C::max_queued_calls, "calls waiting for the compute thread");
  f.add("drain_timeout_seconds", &C::drain_timeout_seconds,
        "on SIGTERM, longest wait for calls in flight");
  f.add("compression", &C::compression, "reply compression: auto, off, zstd, shuffle-zstd");
  f.add("zstd_level", &C::zstd_level, "zstd level of compressed replies (-7..19)");
  f.add("compress_min_bytes", &C::compress_min_bytes,
        "auto compression: smallest reply (raw bytes) worth trying");
  f.add("verify_jobs", &C::verify_jobs, "threads hashing fragments at startup (0 = every core)");
  f.add("log_level", &C::log_level, "trace, debug, info, warn, error or off");
  f.add("compute", &C::compute, "layers, or noop (benchmark aid: returns the input)");
}

// Waits for SIGTERM / SIGINT (blocked in every thread) and asks the server to drain.
class SignalWaiter {
 public:
  explicit SignalWaiter(lw::ServerApp& app) {
    thread_ = std::thread([this, &app] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      sigaddset(&set, SIGINT);
      const timespec tick{0, 100 * 1000 * 1000};
      while (!done_) {
        const int sig = sigtimedwait(&set, nullptr, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
          lw::logger("server")->info("signal {}: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
          app.request_stop();
        }
      }
    });
  }
  ~SignalWaiter() {
    done_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

int run(int argc, char** argv) {
  CLI::App app(
      "layer_server: serves a range of a model's transformer layers (a layerwire fragment "
      "store) over Cap'n Proto RPC, with /health, /metrics and /info over HTTP. It verifies "
      "the fragments of its layers before it goes ready and drains on SIGTERM.",
      "layer_server");
  app.footer(kFooter);
  std::string config_path;
  std::string port_file;
  bool print_config = false;
  app.add_option("-c,--config", config_path,
                 "JSON config file (docs/CONFIG.md, config/server.json)");
  app.add_option("--port-file", port_file,
                 "once ready, write {\"rpc_port\":N,\"http_port\":M,\"pid\":P} here (atomic "
                 "rename); removed at exit");
  app.add_flag("--print-config", print_config,
               "print the effective config (file + flags) as JSON and exit");
  ConfigFlags flags(app);
  add_config_flags(flags);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  lw::ServerConfig config;
  if (!config_path.empty()) config = lw::server_config_load(config_path);
  flags.apply(config);
  lw::server_config_validate(config);
  if (print_config) {
    std::printf("%s\n", lw::server_config_to_json(config).c_str());
    return kExitOk;
  }
  lw::log_setup(config.log_level);

  lw::ServerAppOptions options;
  options.port_file = port_file;
  lw::ServerApp server(config, options);
  SignalWaiter signals(server);
  server.run();
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // SIGTERM / SIGINT are taken by SignalWaiter's sigtimedwait: block them before any thread
  // starts so every thread inherits the mask. SIGPIPE: a peer that vanished is an error
  // return, never a process kill.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  try {
    return run(argc, argv);
  } catch (const lw::Error& e) {
    std::fprintf(stderr, "layer_server: error: %s\n", e.what());
    return exit_code_for(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "layer_server: internal error: %s\n", e.what());
    return kExitInternal;
  }
}
