#include "server/auth.h"

#include <sys/stat.h>

#include <fstream>

#include "common/error.h"

namespace lw {

std::string auth_load_token(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    throw Error(ErrorCode::kAuthFile, "auth token file " + file.string() + " cannot be read");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
    throw Error(ErrorCode::kAuthFile, "auth token file " + file.string() + " has mode " + mode +
                                          ": group and others must have no access (chmod 600)");
  }
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) {
    throw Error(ErrorCode::kAuthFile, "auth token file " + file.string() + " cannot be read");
  }
  const char* ws = " \t\r\n";
  const size_t begin = line.find_first_not_of(ws);
  if (begin == std::string::npos) {
    throw Error(ErrorCode::kAuthFile, "auth token file " + file.string() + " holds no token");
  }
  const size_t end = line.find_last_not_of(ws);
  return line.substr(begin, end - begin + 1);
}

bool auth_token_equal(std::string_view expected, std::string_view given) {
  // Always walks the full expected length; the length difference is folded in at the end.
  unsigned char diff = expected.size() == given.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = given.empty() ? 0 : static_cast<unsigned char>(given[i % given.size()]);
    diff |= static_cast<unsigned char>(expected[i]) ^ g;
  }
  return diff == 0;
}

void auth_check(std::string_view expected, std::string_view given) {
  if (expected.empty()) return;
  if (given.empty()) {
    throw Error(ErrorCode::kAuthMissing,
                "handshake authToken: the server requires a token (auth_token_file) and the "
                "client sent none");
  }
  if (!auth_token_equal(expected, given)) {
    throw Error(ErrorCode::kAuthWrong,
                "handshake authToken: the token does not match the server's (" +
                    std::to_string(given.size()) + " bytes sent)");
  }
}

}  // namespace lw
