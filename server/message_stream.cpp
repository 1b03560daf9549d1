#include "server/message_stream.h"

#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/log.h"
#include "schema/rpc_error.h"

namespace lw {

kj::Exception translate_read_error(kj::Exception&& e, uint64_t max_message_bytes) {
  if (e.getType() == kj::Exception::Type::DISCONNECTED) return kj::mv(e);
  const std::string_view d(e.getDescription().cStr(), e.getDescription().size());
  if (d.find("LW-") != std::string_view::npos) return kj::mv(e);
  if (d.find("too large") != std::string_view::npos ||
      d.find("traversal limit") != std::string_view::npos) {
    return to_rpc_exception(Error(
        ErrorCode::kSrvMessageSize,
        "an incoming RPC message is larger than the server's max_message_bytes = " +
            std::to_string(max_message_bytes) +
            "; the connection is closed (send fewer tokens per call or raise max_message_bytes)"));
  }
  return to_rpc_exception(Error(
      ErrorCode::kSrvMalformed,
      "the bytes received on the RPC port are not Cap'n Proto RPC framing (" + std::string(d) +
          "); the connection is closed. Is an HTTP client or another protocol "
          "talking to the RPC port?"));
}

CheckedMessageStream::CheckedMessageStream(kj::AsyncIoStream& stream, uint64_t max_message_bytes,
                                           ServerMetrics& metrics)
    : inner_(stream), max_message_bytes_(max_message_bytes), metrics_(metrics) {}

kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> CheckedMessageStream::tryReadMessage(
    kj::ArrayPtr<kj::AutoCloseFd> fd_space, capnp::ReaderOptions options,
    kj::ArrayPtr<capnp::word> scratch_space) {
  const uint64_t limit = max_message_bytes_;
  ServerMetrics& metrics = metrics_;
  return inner_.tryReadMessage(fd_space, options, scratch_space)
      .catch_([limit,
               &metrics](kj::Exception&& e) -> kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> {
        kj::Exception out = translate_read_error(kj::mv(e), limit);
        if (std::optional<Error> err = error_from_rpc_exception(out)) {
          metrics.record_error(std::string(err->id()));
          logger("server")->warn("rpc connection dropped: {}", err->what());
        }
        return kj::mv(out);
      });
}

kj::Promise<void> CheckedMessageStream::writeMessage(
    kj::ArrayPtr<const int> fds, kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) {
  return inner_.writeMessage(fds, segments);
}

kj::Promise<void> CheckedMessageStream::writeMessages(
    kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) {
  return inner_.writeMessages(messages);
}

kj::Maybe<int> CheckedMessageStream::getSendBufferSize() { return inner_.getSendBufferSize(); }

kj::Promise<void> CheckedMessageStream::end() { return inner_.end(); }

}  // namespace lw
