// The server's session table: which client (owner = one handshake's Connection) owns which
// session, each session's token limit, last use and calls in flight; the max_sessions
// bound; idle expiry after the TTL; and why a closed session was closed (so a late call gets
// a message that says so). Time is passed in, so tests drive it without sleeping.
// Threading: event loop only. The KV memory itself is freed by the caller on the compute
// thread for every id this class hands back from remove / remove_owner / expire.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lw {

class SessionRegistry {
 public:
  using Clock = std::chrono::steady_clock;

  struct Entry {
    uint64_t owner = 0;
    uint32_t max_tokens = 0;  // positions [0, max_tokens) may be used
    Clock::time_point last_used;
    uint32_t in_flight = 0;  // calls queued or running; such a session never expires
  };

  // ttl zero: sessions never expire.
  SessionRegistry(uint32_t max_sessions, std::chrono::seconds ttl);

  // A new id for `owner`; LW-SRV-001 (overloaded) when max_sessions are open.
  uint64_t open(uint64_t owner, uint32_t max_tokens, Clock::time_point now);
  // nullptr when the id is not open.
  Entry* find(uint64_t id);
  // Why `id` is not open: "closed by the client", "expired after ...", ... or "never opened".
  std::string closed_reason(uint64_t id) const;
  // False when not open.
  bool remove(uint64_t id, const std::string& reason);
  // Every session of the owner (its connection is gone); returns their ids.
  std::vector<uint64_t> remove_owner(uint64_t owner, const std::string& reason);
  // Sessions idle for more than the TTL with no call in flight; returns their ids.
  std::vector<uint64_t> expire(Clock::time_point now);

  size_t size() const { return entries_.size(); }
  std::chrono::seconds ttl() const { return ttl_; }

 private:
  void remember_closed(uint64_t id, const std::string& reason);

  uint32_t max_sessions_;
  std::chrono::seconds ttl_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Entry> entries_;
  // Reasons of recently closed sessions (bounded; oldest forgotten first).
  std::map<uint64_t, std::string> closed_;
  std::deque<uint64_t> closed_order_;
};

}  // namespace lw
