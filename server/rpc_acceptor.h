// The RPC port of layer_server: the listening socket, the accept loop, and one Cap'n Proto
// two-party RPC system per accepted connection, with the reader limit set from
// max_message_bytes and framing errors typed by CheckedMessageStream. A peer that
// disconnects (or is dropped for a bad message) is removed, which releases every capability
// it held and so frees its sessions. Threading: event loop only.
#pragma once

#include <capnp/capability.h>
#include <kj/async-io.h>

#include <cstdint>
#include <map>
#include <string>

#include "server/metrics.h"

namespace lw {

class RpcAcceptor final : public kj::TaskSet::ErrorHandler {
 public:
  // `bootstrap` is the capability every connection receives; `metrics` counts connections.
  RpcAcceptor(kj::AsyncIoProvider& io, capnp::Capability::Client bootstrap,
              uint64_t max_message_bytes, ServerMetrics& metrics);
  ~RpcAcceptor();
  RpcAcceptor(const RpcAcceptor&) = delete;
  RpcAcceptor& operator=(const RpcAcceptor&) = delete;

  // Binds "host:port" (port 0 = a free port) and returns the bound port. Throws LW-SRV-007
  // naming the address and the reason when it cannot listen.
  uint16_t bind(const std::string& address, kj::WaitScope& wait_scope);
  // Starts accepting connections (after bind).
  void start();
  // Closes the listening socket; connections already open keep working.
  void stop_accepting();
  // Resolves once every reply already produced has been written to its socket (runs after
  // every other queued event, then polls the connections' outgoing queues each ms).
  kj::Promise<void> when_flushed(kj::Timer& timer);
  // Drops every connection now (their calls in progress are cancelled).
  void disconnect_all();
  size_t connections() const { return connections_.size(); }

 private:
  struct Connection;
  kj::Promise<void> accept_loop();
  void add(kj::Own<kj::AsyncIoStream> stream);
  void remove(uint64_t id);
  void taskFailed(kj::Exception&& exception) override;  // logs; the connection is gone

  kj::AsyncIoProvider& io_;
  capnp::Capability::Client bootstrap_;
  uint64_t max_message_bytes_;
  ServerMetrics& metrics_;
  kj::Own<kj::ConnectionReceiver> listener_;
  kj::Own<kj::TaskSet> tasks_;
  kj::Own<kj::TaskSet> accept_task_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, kj::Own<Connection>> connections_;
};

}  // namespace lw
