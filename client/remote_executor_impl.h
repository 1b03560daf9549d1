// RemoteLayerExecutor's private state, shared by remote_executor.cpp (setup, forward,
// sessions) and failover.cpp (connecting with retries, moving a range to a replica,
// rebuilding a session's KV by replaying its tokens). Internal to client/.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/connection.h"
#include "client/remote_executor.h"
#include "client/route.h"
#include "client/tokenizer.h"
#include "engine/head.h"
#include "fragments/store.h"
#include "kernels/backend.h"

namespace lw {

// A transport failure of hop `hop`'s server, raised to the failover loop.
struct HopFailure {
  size_t hop;
  Error error;
};

// One server of a group and its connection (null while not connected).
struct Member {
  const ServerSpec* spec = nullptr;
  std::unique_ptr<ServerConnection> conn;
  uint64_t generation = 0;  // bumped on every new connection: older session handles are stale
  ServerStats stats;
  std::string last_error;
};

struct Group {
  std::vector<Member> members;  // primary first, then replicas in config order
  size_t active = 0;
  int begin = 0, end = 0;       // announced range, set once the first member connects
  bool have_range = false;
  Member& current() { return members[active]; }
};

// A session's remote half on one hop.
struct HopSession {
  bool valid = false;
  size_t member = 0;
  uint64_t generation = 0;
  uint32_t handle = 0;
};

struct ClientSession {
  std::vector<int32_t> tokens;   // every token forwarded, oldest first
  std::vector<uint32_t> chunks;  // the call sizes they went in (replayed the same way)
  std::vector<HopSession> hops;  // per route hop
  bool broken = false;           // a non-transport error left the hops inconsistent
};

struct RemoteLayerExecutor::Impl {
  explicit Impl(const ClientConfig& config);
  ~Impl();

  ClientConfig config;
  RpcLoop loop;  // before every connection: destroyed after them
  FragmentStore store;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Head> head;
  std::unique_ptr<Tokenizer> tokenizer;
  HandshakeParams handshake;
  std::vector<Group> groups;  // ClientConfig::servers order
  std::vector<Hop> hops;      // route order
  uint32_t max_call = 0;      // tokens per forward call
  std::map<SessionId, ClientSession> sessions;
  SessionId next_session = 1;
  WireCodec codec;
  uint64_t failovers = 0, replayed_tokens = 0;
  double head_ms = 0;
  std::function<void(size_t, const std::string&)>* hook = nullptr;

  // ---- remote_executor.cpp
  ClientSession& session(SessionId id);
  // hidden [n, dim] for hop `hop`'s server on `handle` at start; returns its output.
  std::vector<float> call(size_t hop, uint32_t handle, uint32_t start,
                          const std::vector<float>& hidden);
  std::vector<float> embed(std::span<const int32_t> tokens);
  // Runs fn, turning a transport failure into HopFailure{hop}.
  template <typename F>
  auto on_hop(size_t hop, F&& fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kClientConnect) throw HopFailure{hop, e};
      throw;
    }
  }

  // ---- failover.cpp
  void backoff_sleep(uint32_t attempt);
  // Connects m (no-op when connected) with config.retries retries on transport failures and
  // overload; checks the announced range and hidden size against the group.
  void connect(Group& group, Member& m);
  // Moves hop's range to the next member that connects; LW-CLIENT-004 when none does.
  void failover(size_t hop, const Error& cause);
  // Makes sure the session has a live session on hop's current server holding positions
  // [0, upto) (opening one and replaying the recorded chunks when needed).
  void ensure(ClientSession& s, size_t hop, uint32_t upto);
  // Runs fn, failing over on HopFailure and retrying overloaded answers with backoff.
  template <typename F>
  auto with_failover(F&& fn) -> decltype(fn());
};

template <typename F>
auto RemoteLayerExecutor::Impl::with_failover(F&& fn) -> decltype(fn()) {
  uint32_t overloaded = 0, moves = 0;
  size_t members = 0;
  for (const Group& g : groups) members += g.members.size();
  for (;;) {
    try {
      return fn();
    } catch (const HopFailure& f) {
      // Bounded: a server that accepts handshakes but fails every call cannot loop forever.
      if (++moves > members * (config.retries + 1)) {
        throw Error(ErrorCode::kClientFailover,
                    "giving up after " + std::to_string(moves - 1) +
                        " failovers in one call; last failure: " + f.error.message());
      }
      failover(f.hop, f.error);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Overloaded || overloaded >= config.retries) throw;
      backoff_sleep(overloaded++);
    }
  }
}

}  // namespace lw
