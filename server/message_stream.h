// The server's side of one RPC byte stream: Cap'n Proto message framing (AsyncIoMessageStream)
// whose read failures are turned into typed errors before the RPC system sees them, so the
// Abort message a misbehaving peer receives names a stable code: a message larger than
// max_message_bytes -> LW-SRV-006, bytes that are not Cap'n Proto framing (an HTTP client
// on the RPC port, random garbage) -> LW-SRV-009. The RPC system then drops only that
// connection. Threading: event loop only.
#pragma once

#include <capnp/serialize-async.h>
#include <kj/async-io.h>

#include <cstdint>

#include "server/metrics.h"

namespace lw {

class CheckedMessageStream final : public capnp::MessageStream {
 public:
  // `stream` and `metrics` must outlive this object. max_message_bytes only names the
  // limit in errors; the limit itself is the ReaderOptions the RPC system passes to
  // tryReadMessage. Each typed failure is counted in metrics.errors by code and logged.
  CheckedMessageStream(kj::AsyncIoStream& stream, uint64_t max_message_bytes,
                       ServerMetrics& metrics);

  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> tryReadMessage(
      kj::ArrayPtr<kj::AutoCloseFd> fd_space, capnp::ReaderOptions options,
      kj::ArrayPtr<capnp::word> scratch_space) override;
  kj::Promise<void> writeMessage(
      kj::ArrayPtr<const int> fds,
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) override;
  kj::Promise<void> writeMessages(
      kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) override;
  kj::Maybe<int> getSendBufferSize() override;
  kj::Promise<void> end() override;

 private:
  capnp::AsyncIoMessageStream inner_;
  uint64_t max_message_bytes_;
  ServerMetrics& metrics_;
};

// The typed exception for a framing-level read failure (see above); a disconnect passes
// through unchanged.
kj::Exception translate_read_error(kj::Exception&& e, uint64_t max_message_bytes);

}  // namespace lw
