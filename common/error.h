// lw::Error: the one exception type for bad input at a boundary (file, manifest, JSON,
// RPC message, CLI flag). Each carries a stable code from error_codes.h and a message that
// names the file, field and values. Bugs use LW_CHECK (abort with values), never Error.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/error_codes.h"

namespace lw {

// How a code maps to callers: RPC exception type, CLI exit code.
enum class ErrorKind { BadInput, Corrupt, NotFound, Io, Unsupported, Overloaded, Internal };

enum class ErrorCode {
#define LW_X_ENUM(name, id, kind, cause) name,
  LW_ERROR_CODES(LW_X_ENUM)
#undef LW_X_ENUM
};

struct ErrorInfo {
  ErrorCode code;
  std::string_view id;     // "LW-GGUF-003"
  ErrorKind kind;
  std::string_view cause;  // one line, as in docs/TROUBLESHOOTING.md
};

// Every row of the catalogue, in declaration order.
const ErrorInfo* error_catalogue(size_t* count);
const ErrorInfo& error_info(ErrorCode code);
std::string_view error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  // what() is "LW-XXX-NNN: message".
  Error(ErrorCode code, const std::string& message);

  ErrorCode code() const { return code_; }
  std::string_view id() const { return error_info(code_).id; }
  ErrorKind kind() const { return error_info(code_).kind; }
  // The message without the code prefix.
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

[[noreturn]] void check_failed(const char* file, int line, const char* expr, const std::string& what);

}  // namespace lw

// A bug check: aborts with the expression, location and the values passed in `msg`.
// Never use on input that came from outside the process; throw lw::Error instead.
#define LW_CHECK(cond, msg)                                    \
  do {                                                         \
    if (!(cond)) ::lw::check_failed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)
