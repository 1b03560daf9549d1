#include "schema/rpc_error.h"

#include <string>
#include <string_view>

namespace lw {

kj::Exception::Type rpc_exception_type(ErrorKind kind) {
  return kind == ErrorKind::Overloaded ? kj::Exception::Type::OVERLOADED
                                       : kj::Exception::Type::FAILED;
}

kj::Exception to_rpc_exception(const Error& error) {
  return kj::Exception(rpc_exception_type(error.kind()), __FILE__, __LINE__,
                       kj::heapString(error.what()));
}

std::optional<Error> error_from_rpc_exception(const kj::Exception& exception) {
  const std::string_view text(exception.getDescription().cStr(), exception.getDescription().size());
  // The code is at the start or after a prefix Cap'n Proto adds ("remote exception: ").
  for (size_t at = text.find("LW-"); at != std::string_view::npos; at = text.find("LW-", at + 1)) {
    if (at != 0 && text[at - 1] != ' ') continue;
    const size_t colon = text.find(": ", at);
    if (colon == std::string_view::npos) return std::nullopt;
    const std::string_view id = text.substr(at, colon - at);
    size_t count = 0;
    const ErrorInfo* rows = error_catalogue(&count);
    for (size_t i = 0; i < count; ++i) {
      if (rows[i].id == id) return Error(rows[i].code, std::string(text.substr(colon + 2)));
    }
  }
  return std::nullopt;
}

void check_protocol_version(uint32_t client_version, uint32_t server_version) {
  if (client_version == server_version) return;
  throw Error(ErrorCode::kWireProtocolVersion,
              "protocol version mismatch: client speaks " + std::to_string(client_version) +
                  ", server speaks " + std::to_string(server_version) +
                  "; run the same layerwire release on both sides");
}

}  // namespace lw
