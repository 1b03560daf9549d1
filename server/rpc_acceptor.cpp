#include "server/rpc_acceptor.h"

#include <capnp/rpc-twoparty.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common/error.h"
#include "common/log.h"
#include "server/message_stream.h"

namespace lw {

struct RpcAcceptor::Connection {
  Connection(kj::Own<kj::AsyncIoStream> s, capnp::Capability::Client bootstrap,
             uint64_t max_message_bytes, ServerMetrics& metrics)
      : stream(kj::mv(s)),
        messages(*stream, max_message_bytes, metrics),
        network(messages, capnp::rpc::twoparty::Side::SERVER, reader_options(max_message_bytes)),
        rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))) {}

  static capnp::ReaderOptions reader_options(uint64_t max_message_bytes) {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = max_message_bytes / sizeof(capnp::word);
    return options;
  }

  kj::Own<kj::AsyncIoStream> stream;
  CheckedMessageStream messages;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
};

RpcAcceptor::RpcAcceptor(kj::AsyncIoProvider& io, capnp::Capability::Client bootstrap,
                         uint64_t max_message_bytes, ServerMetrics& metrics)
    : io_(io),
      bootstrap_(kj::mv(bootstrap)),
      max_message_bytes_(max_message_bytes),
      metrics_(metrics),
      tasks_(kj::heap<kj::TaskSet>(*this)) {}

RpcAcceptor::~RpcAcceptor() {
  accept_task_ = nullptr;
  listener_ = nullptr;
  disconnect_all();
}

uint16_t RpcAcceptor::bind(const std::string& address, kj::WaitScope& wait_scope) {
  try {
    auto addr = io_.getNetwork().parseAddress(address).wait(wait_scope);
    listener_ = addr->listen();
    return static_cast<uint16_t>(listener_->getPort());
  } catch (const kj::Exception& e) {
    throw Error(ErrorCode::kSrvListen, "rpc_listen \"" + address + "\": cannot listen: " +
                                           std::string(e.getDescription().cStr()));
  }
}

void RpcAcceptor::start() {
  LW_CHECK(listener_.get() != nullptr, "RpcAcceptor::start before bind");
  accept_task_ = kj::heap<kj::TaskSet>(*this);
  accept_task_->add(accept_loop());
}

kj::Promise<void> RpcAcceptor::accept_loop() {
  return listener_->accept()
      .then([this](kj::Own<kj::AsyncIoStream>&& stream) { add(kj::mv(stream)); },
            [](kj::Exception&& e) {
              // EMFILE and the like: log and keep accepting.
              logger("server")->warn("rpc accept failed: {}", e.getDescription().cStr());
            })
      .then([this]() { return accept_loop(); });
}

void RpcAcceptor::add(kj::Own<kj::AsyncIoStream> stream) {
  int one = 1;
  try {
    stream->setsockopt(IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  } catch (const kj::Exception&) {
    // Not a TCP socket: nothing to tune.
  }
  const uint64_t id = next_id_++;
  auto connection = kj::heap<Connection>(kj::mv(stream), bootstrap_, max_message_bytes_, metrics_);
  tasks_->add(connection->network.onDisconnect().then(
      [this, id]() { return kj::evalLater([this, id]() { remove(id); }); }));
  connections_.emplace(id, kj::mv(connection));
  metrics_.add_connections(1);
  logger("server")->debug("rpc connection {} accepted", id);
}

void RpcAcceptor::remove(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  metrics_.add_connections(-1);  // before the sessions it held are freed (tests wait on those)
  connections_.erase(it);
  logger("server")->debug("rpc connection {} closed", id);
}

void RpcAcceptor::stop_accepting() {
  accept_task_ = nullptr;
  listener_ = nullptr;
}

kj::Promise<void> RpcAcceptor::when_flushed(kj::Timer& timer) {
  return kj::evalLast([this, &timer]() -> kj::Promise<void> {
    for (auto& [id, connection] : connections_) {
      if (connection->network.getCurrentQueueCount() > 0) {
        return timer.afterDelay(1 * kj::MILLISECONDS).then([this, &timer]() {
          return when_flushed(timer);
        });
      }
    }
    return kj::READY_NOW;
  });
}

void RpcAcceptor::disconnect_all() {
  tasks_ = kj::heap<kj::TaskSet>(*this);  // cancels the onDisconnect waits first
  metrics_.add_connections(-static_cast<int64_t>(connections_.size()));
  connections_.clear();
}

void RpcAcceptor::taskFailed(kj::Exception&& exception) {
  logger("server")->debug("rpc connection task failed: {}", exception.getDescription().cStr());
}

}  // namespace lw
