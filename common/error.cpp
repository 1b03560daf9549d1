#include "common/error.h"

namespace lw {
namespace {

constexpr ErrorInfo kCatalogue[] = {
#define LW_X_INFO(name, id, kind, cause) {ErrorCode::name, id, ErrorKind::kind, cause},
    LW_ERROR_CODES(LW_X_INFO)
#undef LW_X_INFO
};

}  // namespace

const ErrorInfo* error_catalogue(size_t* count) {
  *count = sizeof(kCatalogue) / sizeof(kCatalogue[0]);
  return kCatalogue;
}

const ErrorInfo& error_info(ErrorCode code) { return kCatalogue[static_cast<size_t>(code)]; }

std::string_view error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::BadInput: return "bad-input";
    case ErrorKind::Corrupt: return "corrupt";
    case ErrorKind::NotFound: return "not-found";
    case ErrorKind::Io: return "io";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::Overloaded: return "overloaded";
    case ErrorKind::Internal: return "internal";
  }
  return "unknown";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(std::string(error_info(code).id) + ": " + message),
      code_(code),
      message_(message) {}

void check_failed(const char* file, int line, const char* expr, const std::string& what) {
  std::fprintf(stderr, "layerwire: check failed at %s:%d: %s (%s)\n", file, line, expr,
               what.c_str());
  std::abort();
}

}  // namespace lw
