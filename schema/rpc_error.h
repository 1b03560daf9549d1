// The one mapping between lw::Error and Cap'n Proto RPC exceptions, and the protocol
// version check both peers run first. Convention (docs/WIRE_PROTOCOL.md, "Errors"): the
// exception description is "LW-XXX-NNN: message"; the type is OVERLOADED for codes of kind
// Overloaded (KV budget, busy) and FAILED for every other code.
#pragma once

#include <kj/exception.h>

#include <cstdint>
#include <optional>

#include "common/error.h"

namespace lw {

kj::Exception::Type rpc_exception_type(ErrorKind kind);

// An exception carrying the error's code and message (what() of lw::Error).
kj::Exception to_rpc_exception(const Error& error);

// Recovers the lw::Error from an exception received over RPC (its description is
// "remote exception: LW-...: message" on the calling side) or made locally. nullopt when
// the description carries no known code (a transport failure, a Cap'n Proto limit).
std::optional<Error> error_from_rpc_exception(const kj::Exception& exception);

// Throws LW-WIRE-007 naming both versions when they differ. The server calls it with the
// request's version before looking at any other field; the client with the response's.
void check_protocol_version(uint32_t client_version, uint32_t server_version);

}  // namespace lw
