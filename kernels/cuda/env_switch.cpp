#include "kernels/cuda/env_switch.h"

#include <cstring>
#include <string>

#include "common/error.h"

namespace lw::cuda {

bool parse_env_switch(const char* name, const char* value, bool fallback) {
  if (value == nullptr || *value == '\0') return fallback;
  if (std::strcmp(value, "1") == 0) return true;
  if (std::strcmp(value, "0") == 0) return false;
  throw Error(ErrorCode::kCliArgument, std::string("environment variable ") + name + "=\"" +
                                           value + "\" is not 0 or 1");
}

int parse_env_choice(const char* name, const char* value, int fallback,
                     std::initializer_list<int> allowed) {
  if (value == nullptr || *value == '\0') return fallback;
  std::string list;
  for (int a : allowed) {
    if (std::to_string(a) == value) return a;
    list += (list.empty() ? "" : ", ") + std::to_string(a);
  }
  throw Error(ErrorCode::kCliArgument, std::string("environment variable ") + name + "=\"" +
                                           value + "\" is not one of " + list);
}

}  // namespace lw::cuda
