// Helpers for the layer_server tests: an in-process server on ephemeral ports (run() on its
// own thread), a small synchronous Cap'n Proto client on the test thread's own KJ event
// loop, the engine's local LayerStack as the reference, and a layer_server subprocess.
#pragma once

#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/config.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/wire_codec.h"
#include "engine/layer_stack.h"
#include "fragments/manifest.h"
#include "kernels/backend.h"
#include "schema/layerwire.capnp.h"
#include "schema/rpc_error.h"
#include "schema/wire_convert.h"
#include "server/server_app.h"
#include "tests/unit/engine/engine_test_util.h"

namespace lw::test {

// A config for tests: ephemeral ports on loopback, one CPU thread, small limits.
inline ServerConfig server_test_config(const std::filesystem::path& store) {
  ServerConfig c;
  c.fragments_dir = store.string();
  c.rpc_listen = "127.0.0.1:0";
  c.http_listen = "127.0.0.1:0";
  c.threads = 1;
  c.verify_jobs = 1;
  c.kv_budget_tokens = 256;
  c.kv_block_size = 16;
  c.max_sessions = 8;
  c.max_tokens_per_call = 16;
  c.max_message_bytes = 32 * 1024;
  c.session_ttl_seconds = 600;
  c.log_level = "warn";
  return c;
}

// ServerApp::run() on a thread; start() waits until it is ready.
class InProcessServer {
 public:
  // Applies config.log_level to the process's loggers, as layer_server's main() does.
  explicit InProcessServer(ServerConfig config, ServerAppOptions options = {})
      : app_((log_setup(config.log_level), std::move(config)), std::move(options)) {}
  ~InProcessServer() { stop(); }

  // True once ready; otherwise error() says why run() ended.
  bool start() {
    thread_ = std::thread([this] {
      try {
        app_.run();
      } catch (const Error& e) {
        error_ = e.what();
      } catch (const std::exception& e) {
        error_ = std::string("non-lw exception: ") + e.what();
      }
    });
    const auto ports = app_.wait_ready(std::chrono::seconds(30));
    if (!ports) return false;
    ports_ = *ports;
    return true;
  }
  void stop() {
    app_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  // Joins run() without asking it to stop (for a server that failed to start).
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& error() const { return error_; }
  ServerPorts ports() const { return ports_; }
  ServerApp& app() { return app_; }
  MetricsSnapshot metrics() { return app_.metrics().snapshot(); }

 private:
  ServerApp app_;
  std::thread thread_;
  std::string error_;
  ServerPorts ports_;
};

// A failed RPC call as the client sees it.
struct CallError {
  std::string code;  // "LW-..." or "" when the exception carries none
  kj::Exception::Type type = kj::Exception::Type::FAILED;
  std::string description;
};
inline std::ostream& operator<<(std::ostream& os, const CallError& e) {
  return os << "[" << e.code << "] " << e.description;
}

inline CallError call_error(const kj::Exception& e) {
  CallError out;
  out.type = e.getType();
  out.description = e.getDescription().cStr();
  if (std::optional<Error> err = error_from_rpc_exception(e)) out.code = std::string(err->id());
  return out;
}

struct HandshakeArgs {
  uint32_t protocol_version = schema::PROTOCOL_VERSION;
  std::string digest;
  std::string architecture;
  std::string token;
  bool want_compression = true;
};

struct ForwardReply {
  std::vector<float> hidden;
  uint32_t length = 0;
  WireTensor tensor;
  uint64_t total_ns = 0;
};

// A synchronous client: one TCP connection, one RPC system, on `io`'s event loop (one
// AsyncIoContext per thread).
class TestClient {
 public:
  TestClient(kj::AsyncIoContext& io, uint16_t port) : io_(io) {
    stream_ = io.provider->getNetwork()
                  .parseAddress("127.0.0.1", port)
                  .wait(io.waitScope)
                  ->connect()
                  .wait(io.waitScope);
    capnp::ReaderOptions options;
    options.traversalLimitInWords = uint64_t{1} << 28;
    network_ =
        kj::heap<capnp::TwoPartyVatNetwork>(*stream_, capnp::rpc::twoparty::Side::CLIENT, options);
    rpc_ = kj::heap<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>(capnp::makeRpcClient(*network_));
    capnp::MallocMessageBuilder message;
    auto vat = message.initRoot<capnp::rpc::twoparty::VatId>();
    vat.setSide(capnp::rpc::twoparty::Side::SERVER);
    server_ = rpc_->bootstrap(vat).castAs<schema::LayerServer>();
  }
  ~TestClient() { disconnect(); }

  void disconnect() {
    sessions_.clear();
    connection_ = nullptr;
    server_ = nullptr;
    rpc_ = nullptr;
    network_ = nullptr;
    stream_ = nullptr;
  }

  kj::WaitScope& wait_scope() { return io_.waitScope; }
  schema::LayerServer::Client& server() { return *server_; }
  schema::Connection::Client& connection() { return *connection_; }

  std::optional<CallError> handshake(const HandshakeArgs& args) {
    auto request = server_->handshakeRequest();
    auto r = request.initRequest();
    r.setProtocolVersion(args.protocol_version);
    r.setClientName("server_test");
    r.setArchitecture(args.architecture);
    r.setManifestDigest(args.digest);
    r.setAuthToken(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(args.token.data()),
                                       args.token.size()));
    if (args.want_compression) {
      auto enc = r.initWantedEncodings(2);
      enc.set(0, schema::Encoding::SHUFFLE_ZSTD);
      enc.set(1, schema::Encoding::ZSTD);
    }
    try {
      auto response = request.send().wait(io_.waitScope);
      hidden_size_ = response.getResponse().getHiddenSize();
      kv_budget_ = response.getResponse().getLimits().getKvBudgetTokens();
      connection_ = response.getConnection();
      return std::nullopt;
    } catch (const kj::Exception& e) {
      return call_error(e);
    }
  }

  // Opens a session; its index in sessions() or the error.
  std::variant<size_t, CallError> open_session(uint32_t max_tokens) {
    auto request = connection_->openSessionRequest();
    request.setMaxTokens(max_tokens);
    try {
      auto response = request.send().wait(io_.waitScope);
      sessions_.push_back(response.getSession());
      return sessions_.size() - 1;
    } catch (const kj::Exception& e) {
      return call_error(e);
    }
  }
  schema::Session::Client& session(size_t i) { return sessions_.at(i); }
  // Drops the Connection capability (its sessions close) but keeps the Session ones.
  void drop_connection() { connection_.reset(); }
  void drop_session(size_t i) { sessions_.at(i) = schema::Session::Client(nullptr); }

  std::variant<ForwardReply, CallError> forward_tensor(size_t s, uint32_t start,
                                                       const WireTensor& tensor,
                                                       WireDtype reply = WireDtype::F32) {
    auto request = sessions_.at(s).forwardRequest();
    request.setStartPos(start);
    request.setReplyDtype(static_cast<schema::Dtype>(static_cast<uint16_t>(reply)));
    write_tensor(request.initHidden(), tensor);
    try {
      auto response = request.send().wait(io_.waitScope);
      ForwardReply out;
      out.tensor = read_tensor(response.getHidden(), DecodeLimits{});
      out.hidden = decode_tensor(out.tensor, DecodeLimits{});
      out.length = response.getLength();
      out.total_ns = response.getTimings().getTotalNs();
      return out;
    } catch (const kj::Exception& e) {
      return call_error(e);
    } catch (const Error& e) {
      CallError out;
      out.code = std::string(e.id());
      out.description = std::string("client-side decode: ") + e.what();
      return out;
    }
  }

  std::variant<ForwardReply, CallError> forward(size_t s, uint32_t start,
                                                const std::vector<float>& hidden,
                                                WireDtype dtype = WireDtype::F32,
                                                CompressionMode mode = CompressionMode::Off,
                                                WireDtype reply = WireDtype::F32) {
    EncodeOptions options;
    options.dtype = dtype;
    options.mode = mode;
    const uint64_t shape[2] = {hidden.size() / hidden_size_, hidden_size_};
    return forward_tensor(s, start, encode_tensor(hidden.data(), shape, options), reply);
  }

  std::optional<CallError> close_session(size_t s) {
    try {
      sessions_.at(s).closeRequest().send().wait(io_.waitScope);
      return std::nullopt;
    } catch (const kj::Exception& e) {
      return call_error(e);
    }
  }

  std::variant<uint32_t, CallError> truncate(size_t s, uint32_t position) {
    auto request = sessions_.at(s).truncateRequest();
    request.setPosition(position);
    try {
      return request.send().wait(io_.waitScope).getLength();
    } catch (const kj::Exception& e) {
      return call_error(e);
    }
  }

  uint32_t hidden_size() const { return hidden_size_; }
  uint64_t kv_budget() const { return kv_budget_; }

 private:
  kj::AsyncIoContext& io_;
  kj::Own<kj::AsyncIoStream> stream_;
  kj::Own<capnp::TwoPartyVatNetwork> network_;
  kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc_;
  std::optional<schema::LayerServer::Client> server_;
  std::optional<schema::Connection::Client> connection_;
  std::vector<schema::Session::Client> sessions_;
  uint32_t hidden_size_ = 0;
  uint64_t kv_budget_ = 0;
};

// The engine's own forward over the same store: the reference the server must match.
class LocalStack {
 public:
  LocalStack(const std::filesystem::path& store_dir, const ServerConfig& config)
      : store_(FragmentStore::open(store_dir)),
        backend_(make_backend("cpu", 0, config.threads)),
        stack_(store_, LayerRange{0, static_cast<int>(store_.manifest().params.n_layers)},
               *backend_, options(config)) {}

  std::vector<float> forward(uint64_t session, int32_t start, const std::vector<float>& in) {
    if (!stack_.kv().contains(session)) stack_.kv().open(session);
    const int32_t dim = static_cast<int32_t>(stack_.params().dim);
    const BatchEntry entry{session, static_cast<int32_t>(in.size() / dim), start};
    std::vector<float> out(in.size());
    stack_.forward(std::span<const BatchEntry>(&entry, 1), in, out);
    return out;
  }
  uint32_t dim() const { return stack_.params().dim; }

 private:
  static LayerStackOptions options(const ServerConfig& config) {
    LayerStackOptions o;
    o.kv.block_size = static_cast<int32_t>(config.kv_block_size);
    o.kv.budget_tokens = static_cast<int64_t>(config.kv_budget_tokens);
    o.max_batch_tokens = static_cast<int32_t>(config.max_tokens_per_call);
    return o;
  }
  FragmentStore store_;
  std::unique_ptr<Backend> backend_;
  LayerStack stack_;
};

// Polls `done` every 10 ms until it holds or `timeout` passes.
template <typename F>
bool eventually(F done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// The value of a call that must succeed (a test failure, and a default value, otherwise).
template <typename T>
T ok(std::variant<T, CallError> v) {
  if (const CallError* e = std::get_if<CallError>(&v)) {
    ADD_FAILURE() << "call failed: " << *e;
    return T{};
  }
  return std::get<T>(std::move(v));
}

// The error of a call that must fail (a test failure, and an empty error, otherwise).
template <typename T>
CallError failed(std::variant<T, CallError> v) {
  if (const CallError* e = std::get_if<CallError>(&v)) return *e;
  ADD_FAILURE() << "the call succeeded but should have failed";
  return CallError{};
}
inline CallError failed(std::optional<CallError> e) {
  if (e) return *e;
  ADD_FAILURE() << "the call succeeded but should have failed";
  return CallError{};
}

// build/tools/layer_server as a child process.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    std::string exe = tool_path("layer_server").string();
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, exe.c_str(), nullptr, nullptr, argv.data(), ::environ) != 0) pid_ = -1;
  }
  ~ServerProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      wait_exit(std::chrono::seconds(10));
    }
  }
  pid_t pid() const { return pid_; }
  void signal(int sig) { ::kill(pid_, sig); }
  // The exit status (exit code, or 128 + signal), or -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

}  // namespace lw::test
