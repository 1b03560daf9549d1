// Shared-token authentication of the RPC handshake: loading the token file (refusing one
// that group or others can read) and the constant-time comparison. The token is never
// logged and never appears in an error message.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace lw {

// Reads the first line of `file`, trimming surrounding whitespace. Throws LW-AUTH-003 when
// the file cannot be read, the token is empty, or the file is readable or writable by group
// or others (chmod 600).
std::string auth_load_token(const std::filesystem::path& file);

// Compares in time that depends only on the lengths, not on where the bytes differ.
bool auth_token_equal(std::string_view expected, std::string_view given);

// The handshake check. `expected` empty: no authentication, anything passes. Otherwise
// throws LW-AUTH-001 when `given` is empty and LW-AUTH-002 when it differs.
void auth_check(std::string_view expected, std::string_view given);

}  // namespace lw
