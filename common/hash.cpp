#include "common/hash.h"

#include <xxhash.h>

#include <cstdio>

namespace lw {

std::string Hash128::hex() const {
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(high),
                static_cast<unsigned long long>(low));
  return buf;
}

bool Hash128::from_hex(const std::string& text, Hash128* out) {
  if (text.size() != 32) return false;
  uint64_t parts[2] = {0, 0};
  for (size_t i = 0; i < 32; ++i) {
    char c = text[i];
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else return false;
    parts[i / 16] = (parts[i / 16] << 4) | static_cast<uint64_t>(v);
  }
  out->high = parts[0];
  out->low = parts[1];
  return true;
}

Hash128 xxh3_128(const void* data, size_t size) {
  XXH128_hash_t h = XXH3_128bits(data, size);
  return {h.high64, h.low64};
}

uint64_t xxh3_64(const void* data, size_t size) { return XXH3_64bits(data, size); }

struct Hasher128::State {
  XXH3_state_t* st = XXH3_createState();
  ~State() { XXH3_freeState(st); }
};

Hasher128::Hasher128() : state_(std::make_unique<State>()) { reset(); }
Hasher128::~Hasher128() = default;
void Hasher128::reset() { XXH3_128bits_reset(state_->st); }
void Hasher128::update(const void* data, size_t size) {
  XXH3_128bits_update(state_->st, data, size);
}
Hash128 Hasher128::digest() const {
  XXH128_hash_t h = XXH3_128bits_digest(state_->st);
  return {h.high64, h.low64};
}

}  // namespace lw
