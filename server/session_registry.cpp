#include "server/session_registry.h"

#include "common/error.h"

namespace lw {

namespace {
constexpr size_t kClosedRemembered = 4096;
}

SessionRegistry::SessionRegistry(uint32_t max_sessions, std::chrono::seconds ttl)
    : max_sessions_(max_sessions), ttl_(ttl) {}

uint64_t SessionRegistry::open(uint64_t owner, uint32_t max_tokens, Clock::time_point now) {
  if (entries_.size() >= max_sessions_) {
    throw Error(ErrorCode::kSrvSessionLimit,
                "openSession: " + std::to_string(entries_.size()) +
                    " sessions are open, the server's max_sessions is " +
                    std::to_string(max_sessions_) + "; retry later or close idle sessions");
  }
  const uint64_t id = next_id_++;
  entries_[id] = Entry{owner, max_tokens, now, 0};
  return id;
}

SessionRegistry::Entry* SessionRegistry::find(uint64_t id) {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string SessionRegistry::closed_reason(uint64_t id) const {
  auto it = closed_.find(id);
  if (it != closed_.end()) return it->second;
  return id != 0 && id < next_id_ ? "closed" : "never opened";
}

bool SessionRegistry::remove(uint64_t id, const std::string& reason) {
  if (entries_.erase(id) == 0) return false;
  remember_closed(id, reason);
  return true;
}

std::vector<uint64_t> SessionRegistry::remove_owner(uint64_t owner, const std::string& reason) {
  std::vector<uint64_t> ids;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.owner == owner) {
      ids.push_back(it->first);
      remember_closed(it->first, reason);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  return ids;
}

std::vector<uint64_t> SessionRegistry::expire(Clock::time_point now) {
  std::vector<uint64_t> ids;
  if (ttl_.count() == 0) return ids;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.in_flight == 0 && now - it->second.last_used > ttl_) {
      ids.push_back(it->first);
      remember_closed(it->first, "expired: idle for more than session_ttl_seconds = " +
                                     std::to_string(ttl_.count()));
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  return ids;
}

void SessionRegistry::remember_closed(uint64_t id, const std::string& reason) {
  if (closed_.emplace(id, reason).second) closed_order_.push_back(id);
  while (closed_order_.size() > kClosedRemembered) {
    closed_.erase(closed_order_.front());
    closed_order_.pop_front();
  }
}

}  // namespace lw
