// RemoteLayerExecutor::Impl's connection management: connecting with retries and backoff,
// moving a layer range to a replica when its server fails, and rebuilding a session's KV
// cache on a new server by replaying the session's tokens in their original call sizes
// (so the rebuilt cache, and every later result, equals an uninterrupted run).
#include <algorithm>

#include "client/remote_executor_impl.h"
#include "common/log.h"

namespace lw {

void RemoteLayerExecutor::Impl::backoff_sleep(uint32_t attempt) {
  uint64_t ms = config.backoff_ms;
  for (uint32_t i = 0; i < attempt && ms < config.backoff_max_ms; ++i) ms *= 2;
  ms = std::min<uint64_t>(ms, config.backoff_max_ms);
  if (ms == 0) return;
  // Waiting on the loop (not sleeping the thread) keeps the RPC system's housekeeping going.
  loop.io.provider->getTimer().afterDelay(ms * kj::MILLISECONDS).wait(loop.io.waitScope);
}

void RemoteLayerExecutor::Impl::connect(Group& group, Member& m) {
  if (m.conn) return;
  std::optional<Error> last;
  for (uint32_t attempt = 0; attempt <= config.retries; ++attempt) {
    if (attempt > 0) backoff_sleep(attempt - 1);
    try {
      auto conn = std::make_unique<ServerConnection>(loop, *m.spec, handshake);
      const ServerDescription& d = conn->description();
      const uint32_t dim = store.manifest().params.dim;
      if (d.hidden_size != dim) {
        throw Error(ErrorCode::kClientModel,
                    "server " + conn->label() + " takes hidden states of size " +
                        std::to_string(d.hidden_size) + " but the client's model has dim " +
                        std::to_string(dim));
      }
      if (group.have_range && (d.layer_begin != group.begin || d.layer_end != group.end)) {
        throw Error(ErrorCode::kClientRange,
                    "server " + conn->label() + " serves layers " +
                        layer_range_text(d.layer_begin, d.layer_end) + " but its group (" +
                        group.members[0].spec->name + ") serves layers " +
                        layer_range_text(group.begin, group.end) +
                        "; a replica must serve the same layers as its primary");
      }
      if (!group.have_range) {
        group.begin = d.layer_begin;
        group.end = d.layer_end;
        group.have_range = true;
      }
      m.conn = std::move(conn);
      m.generation++;
      logger("client")->info("connected to server {} ({}): layers {}, {} on {}", m.spec->name,
                             m.spec->rpc, layer_range_text(d.layer_begin, d.layer_end),
                             d.server_name, d.device);
      return;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kClientConnect && e.kind() != ErrorKind::Overloaded) throw;
      last = e;
    }
  }
  throw *last;
}

void RemoteLayerExecutor::Impl::failover(size_t hop, const Error& cause) {
  Group& g = groups[hops[hop].group];
  const size_t failed = g.active;
  Member& f = g.members[failed];
  f.conn.reset();  // frees whatever the server still holds for us
  f.stats.failures++;
  // The cause usually starts with "server NAME (ADDR): "; name the server once.
  std::string why = cause.message();
  const std::string prefix = "server " + f.spec->name + " (" + f.spec->rpc + "): ";
  if (why.rfind(prefix, 0) == 0) why = why.substr(prefix.size());
  f.last_error = why;
  const std::string range = "layers " + layer_range_text(g.begin, g.end);
  logger("client")->warn("{}: server {} ({}) failed: {}; looking for a replica", range,
                         f.spec->name, f.spec->rpc, why);
  // Replicas in config order after the failed one, then the failed server itself (it may
  // have been restarted, or the failure was a dropped connection).
  std::string tried;
  const size_t n = g.members.size();
  for (size_t i = 1; i <= n; ++i) {
    const size_t idx = (failed + i) % n;
    Member& m = g.members[idx];
    try {
      connect(g, m);
    } catch (const Error& e) {
      m.last_error = e.message();
      tried += (tried.empty() ? "" : "; ") + m.spec->name + ": " + e.message();
      m.conn.reset();
      continue;
    }
    g.active = idx;
    failovers++;
    logger("client")->warn("{}: moved from server {} to server {} ({})", range, f.spec->name,
                           m.spec->name, m.spec->rpc);
    return;
  }
  const std::string head = range + ": server " + f.spec->name + " (" + f.spec->rpc +
                           ") failed (" + why + ")";
  if (n == 1) {
    throw Error(ErrorCode::kClientFailover,
                head + " and the config lists no replica for these layers (add one under "
                       "\"replicas\" of server " + f.spec->name + "); reconnecting failed: " +
                    tried);
  }
  throw Error(ErrorCode::kClientFailover,
              head + " and no replica could take over; tried: " + tried);
}

void RemoteLayerExecutor::Impl::ensure(ClientSession& s, size_t hop, uint32_t upto) {
  Group& g = groups[hops[hop].group];
  HopSession& h = s.hops[hop];
  if (h.valid && h.member == g.active && h.generation == g.current().generation &&
      g.current().conn) {
    return;
  }
  h.valid = false;
  Member& m = g.current();
  if (!m.conn) {
    throw HopFailure{hop, Error(ErrorCode::kClientConnect,
                                "server " + m.spec->name + " (" + m.spec->rpc +
                                    ") is not connected")};
  }
  const uint32_t handle =
      on_hop(hop, [&] { return m.conn->open_session(config.session_max_tokens); });
  if (upto > 0) {
    // Replay: the recorded chunks through temporary sessions on the hops before this one
    // (their own KV stays untouched), into the new session.
    std::vector<uint32_t> temp(hop);
    size_t opened = 0;
    try {
      for (size_t j = 0; j < hop; ++j, ++opened) {
        Member& u = groups[hops[j].group].current();
        if (!u.conn) throw HopFailure{j, Error(ErrorCode::kClientConnect, "not connected")};
        temp[j] = on_hop(j, [&] { return u.conn->open_session(upto); });
      }
      uint32_t pos = 0;
      for (size_t c = 0; c < s.chunks.size() && pos < upto; ++c) {
        const uint32_t len = s.chunks[c];
        std::vector<float> hidden =
            embed(std::span<const int32_t>(s.tokens).subspan(pos, len));
        for (size_t j = 0; j < hop; ++j) hidden = call(j, temp[j], pos, hidden);
        call(hop, handle, pos, hidden);
        pos += len;
      }
      LW_CHECK(pos == upto, "replayed " + std::to_string(pos) + " of " + std::to_string(upto));
    } catch (...) {
      for (size_t j = 0; j < opened; ++j) {
        Member& u = groups[hops[j].group].current();
        if (u.conn) u.conn->close_session(temp[j]);
      }
      if (m.conn) m.conn->close_session(handle);
      throw;
    }
    for (size_t j = 0; j < hop; ++j) {
      Member& u = groups[hops[j].group].current();
      if (u.conn) u.conn->close_session(temp[j]);
    }
    replayed_tokens += upto;
    logger("client")->info("rebuilt {} tokens of KV on server {} (layers {})", upto,
                           m.spec->name, layer_range_text(g.begin, g.end));
  }
  h.valid = true;
  h.member = g.active;
  h.generation = m.generation;
  h.handle = handle;
}

}  // namespace lw
