// xxh3 digests used for fragment files, tensors, manifests (128-bit, hex) and wire tensors
// (64-bit). Thin wrappers over libxxhash so no other header needs xxhash.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lw {

struct Hash128 {
  uint64_t high = 0;
  uint64_t low = 0;
  bool operator==(const Hash128&) const = default;
  // 32 lowercase hex digits, high half first (xxhsum's canonical order).
  std::string hex() const;
  // Parses 32 hex digits; returns false on anything else.
  static bool from_hex(const std::string& text, Hash128* out);
};

Hash128 xxh3_128(const void* data, size_t size);
uint64_t xxh3_64(const void* data, size_t size);

// Streaming xxh3-128 for data that arrives in pieces (files read in chunks).
class Hasher128 {
 public:
  Hasher128();
  ~Hasher128();
  Hasher128(const Hasher128&) = delete;
  Hasher128& operator=(const Hasher128&) = delete;
  void update(const void* data, size_t size);
  Hash128 digest() const;
  void reset();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace lw
