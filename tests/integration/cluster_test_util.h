// Helpers of the cluster tests: a tiny synthesized store, layer_server subprocesses on
// ephemeral ports (bind port 0, read the port file the server writes once ready), and a
// client config pointing at them. Servers are stopped (SIGTERM, then SIGKILL) when their
// LayerServerProcess goes out of scope.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/client_config.h"
#include "fragments/store.h"
#include "fragments/synth.h"
#include "tests/support/test_support.h"

namespace lw::test {

// Synthesizes a tiny 4-layer model (random weights) and splits it into dir/name.
inline std::filesystem::path make_tiny_store(const TempDir& dir, const std::string& name,
                                             uint64_t seed = 7) {
  SynthOptions options;
  options.preset = "tiny";
  options.quant = "q4_k_m";
  options.seed = seed;
  const auto gguf = dir / (name + ".gguf");
  synth_model(options, gguf);
  store_split(gguf, dir / name, SplitOptions{});
  return dir / name;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

class LayerServerProcess {
 public:
  // Starts layer_server with `args` (plus ephemeral ports and a port file) and waits until it
  // is ready. ASSERT-style failures are reported through gtest and leave pid_ = -1.
  LayerServerProcess(const TempDir& dir, const std::string& name,
                     const std::vector<std::string>& args)
      : name_(name) {
    port_file_ = dir / (name + ".ports");
    log_file_ = dir / (name + ".log");
    std::vector<std::string> argv = {tool_path("layer_server").string(),
                                     "--rpc-listen",
                                     "127.0.0.1:0",
                                     "--http-listen",
                                     "127.0.0.1:0",
                                     "--port-file",
                                     port_file_.string(),
                                     "--threads",
                                     "1",
                                     "--log-level",
                                     "warn"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::exists(port_file_)) {
        const std::string text = read_file(port_file_);
        rpc_port_ = field(text, "\"rpc_port\":");
        http_port_ = field(text, "\"http_port\":");
        if (rpc_port_ > 0) return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "layer_server " << name << " exited before ready: "
                      << read_file(log_file_);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "layer_server " << name << " not ready after 60 s: " << read_file(log_file_);
  }
  ~LayerServerProcess() { stop(SIGTERM); }

  // Sends `sig` and reaps the process (SIGKILL after 10 s).
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    for (int i = 0; i < 1000; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  bool running() const { return pid_ > 0; }
  std::string rpc() const { return "127.0.0.1:" + std::to_string(rpc_port_); }
  std::string http() const { return "127.0.0.1:" + std::to_string(http_port_); }
  const std::string& name() const { return name_; }
  std::string log() const { return read_file(log_file_); }

 private:
  static int field(const std::string& text, const std::string& key) {
    const size_t at = text.find(key);
    return at == std::string::npos ? 0 : std::atoi(text.c_str() + at + key.size());
  }
  std::string name_;
  std::filesystem::path port_file_, log_file_;
  pid_t pid_ = -1;
  int rpc_port_ = 0, http_port_ = 0;
};

// A ServerSpec for a running process.
inline ServerSpec spec_of(const LayerServerProcess& p, const std::string& layers = "") {
  ServerSpec s;
  s.name = p.name();
  s.rpc = p.rpc();
  s.http = p.http();
  s.layers = layers;
  return s;
}

// A client config for the store with deterministic, single-threaded head and short timeouts.
inline ClientConfig cluster_config(const std::filesystem::path& store,
                                   std::vector<ServerGroup> groups) {
  ClientConfig c;
  c.fragments_dir = store.string();
  c.servers = std::move(groups);
  c.head_threads = 1;
  c.connect_timeout_ms = 3000;
  c.call_timeout_ms = 20000;
  c.retries = 1;
  c.backoff_ms = 20;
  c.backoff_max_ms = 50;
  c.session_max_tokens = 256;
  return c;
}

}  // namespace lw::test
