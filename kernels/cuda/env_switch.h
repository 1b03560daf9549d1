// The CUDA backend's A/B switches read from the environment (LW_CUDA_*), one parser for all:
// a bad value is an LW-CLI-001 error that names the variable and what it accepts.
#pragma once

#include <initializer_list>

namespace lw::cuda {

// value of variable `name`: nullptr or "" -> fallback; "0" -> false; "1" -> true; else throws.
bool parse_env_switch(const char* name, const char* value, bool fallback);
// value of variable `name`: nullptr or "" -> fallback; one of `allowed` -> it; else throws.
int parse_env_choice(const char* name, const char* value, int fallback,
                     std::initializer_list<int> allowed);

}  // namespace lw::cuda
