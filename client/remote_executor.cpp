#include "client/remote_executor.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "client/remote_executor_impl.h"
#include "common/log.h"

namespace lw {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

}  // namespace

uint64_t ExecutorStats::raw_bytes() const {
  uint64_t n = 0;
  for (const ServerStats& s : servers) n += s.raw_bytes_sent + s.raw_bytes_received;
  return n;
}
uint64_t ExecutorStats::wire_bytes() const {
  uint64_t n = 0;
  for (const ServerStats& s : servers) n += s.wire_bytes_sent + s.wire_bytes_received;
  return n;
}

RemoteLayerExecutor::Impl::Impl(const ClientConfig& cfg)
    : config(cfg), store(FragmentStore::open(cfg.fragments_dir)) {
  const ModelParams& p = store.manifest().params;
  // An expected architecture goes in the handshake: each server refuses a mismatch
  // (LW-SRV-005, naming both), and the client checks the reply as well.
  backend = make_backend(config.head_backend, config.head_device, config.head_threads);
  head = std::make_unique<Head>(store, *backend);

  handshake.client_name = "layerwire-client 0.1.0 " + host_name();
  handshake.architecture = config.architecture;
  handshake.manifest_digest = store.manifest().digest.hex();
  if (!config.auth_token_file.empty()) {
    handshake.auth_token = client_load_token(config.auth_token_file);
  }
  handshake.reply_encodings = {WireEncoding::Raw};
  if (config.compression != CompressionMode::Off) {
    handshake.reply_encodings = {WireEncoding::ShuffleZstd, WireEncoding::Zstd,
                                 WireEncoding::Raw};
  }
  handshake.connect_timeout_ms = config.connect_timeout_ms;
  handshake.call_timeout_ms = config.call_timeout_ms;

  // Connect every group: the first member that answers serves it; refusals (digest,
  // architecture, auth, version) are configuration errors and stop here.
  std::vector<AnnouncedRange> announced;
  groups.resize(config.servers.size());
  for (size_t gi = 0; gi < config.servers.size(); ++gi) {
    Group& g = groups[gi];
    const ServerGroup& sg = config.servers[gi];
    g.members.resize(1 + sg.replicas.size());
    g.members[0].spec = &sg.primary;
    for (size_t r = 0; r < sg.replicas.size(); ++r) g.members[r + 1].spec = &sg.replicas[r];
    for (Member& m : g.members) {
      m.stats.name = m.spec->name;
      m.stats.rpc = m.spec->rpc;
    }
    std::string tried;
    bool connected = false;
    for (size_t i = 0; i < g.members.size(); ++i) {
      Member& m = g.members[i];
      try {
        connect(g, m);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kClientConnect) throw;
        m.last_error = e.message();
        tried += (tried.empty() ? "" : "; ") + e.message();
        logger("client")->warn("{}", e.what());
        continue;
      }
      if (!connected) {
        g.active = i;
        connected = true;
      }
    }
    if (!connected) {
      throw Error(ErrorCode::kClientConnect,
                  "no server of group " + sg.primary.name + " could be reached: " + tried);
    }
    const Member& a = g.current();
    announced.push_back(AnnouncedRange{gi, a.spec->name, sg.primary.layers,
                                       a.conn->description().layer_begin,
                                       a.conn->description().layer_end});
  }
  hops = route_build(announced, static_cast<int>(p.n_layers));
  max_call = config.max_tokens_per_call;
  for (Group& g : groups) {
    for (Member& m : g.members) {
      m.stats.layer_begin = g.begin;
      m.stats.layer_end = g.end;
      if (!m.conn) continue;
      const ServerDescription& d = m.conn->description();
      uint32_t limit = d.max_tokens_per_call;
      // An f32 request of n rows is n * dim * 4 bytes plus a little framing; stay under the
      // server's message limit too.
      if (d.max_message_bytes > 4096 && d.hidden_size > 0) {
        const uint64_t rows = (d.max_message_bytes - 4096) / (uint64_t{d.hidden_size} * 4);
        if (rows > 0 && (limit == 0 || rows < limit)) limit = static_cast<uint32_t>(rows);
      }
      if (limit > 0 && (max_call == 0 || limit < max_call)) max_call = limit;
    }
  }
  if (max_call == 0) max_call = 512;
}

RemoteLayerExecutor::Impl::~Impl() {
  sessions.clear();
  for (Group& g : groups)
    for (Member& m : g.members) m.conn.reset();
}

ClientSession& RemoteLayerExecutor::Impl::session(SessionId id) {
  auto it = sessions.find(id);
  if (it == sessions.end()) {
    throw Error(ErrorCode::kEngineSession,
                "session " + std::to_string(id) + " is not open in this client");
  }
  return it->second;
}

std::vector<float> RemoteLayerExecutor::Impl::embed(std::span<const int32_t> tokens) {
  const auto t0 = Clock::now();
  std::vector<float> hidden(tokens.size() * store.manifest().params.dim);
  head->embed(tokens, hidden);
  head_ms += ms_since(t0);
  return hidden;
}

std::vector<float> RemoteLayerExecutor::Impl::call(size_t hop, uint32_t handle, uint32_t start,
                                                   const std::vector<float>& hidden) {
  Group& g = groups[hops[hop].group];
  Member& m = g.current();
  if (hook && *hook) (*hook)(hop, m.spec->name);
  const ServerDescription& d = m.conn->description();
  const uint64_t n = hidden.size() / d.hidden_size;
  EncodeOptions enc;
  enc.dtype = std::find(d.dtypes.begin(), d.dtypes.end(), config.wire_dtype) != d.dtypes.end()
                  ? config.wire_dtype
                  : WireDtype::F32;
  enc.mode = config.compression;
  if (enc.mode != CompressionMode::Off &&
      std::find(d.encodings.begin(), d.encodings.end(), WireEncoding::ShuffleZstd) ==
          d.encodings.end()) {
    enc.mode = CompressionMode::Off;
  }
  enc.zstd_level = config.zstd_level;
  const uint64_t shape[2] = {n, d.hidden_size};
  WireStats sent;
  const WireTensor request = codec.encode(hidden.data(), shape, enc, &sent);
  const auto t0 = Clock::now();
  ForwardReply reply = on_hop(hop, [&] {
    return m.conn->forward(handle, start, request, enc.dtype, codec, n * d.hidden_size * 4);
  });
  const double rtt = ms_since(t0);
  if (reply.length != start + n) {
    throw Error(ErrorCode::kClientModel,
                "server " + m.conn->label() + " reports session length " +
                    std::to_string(reply.length) + " after positions " + std::to_string(start) +
                    ".." + std::to_string(start + n - 1) + " (expected " +
                    std::to_string(start + n) + ")");
  }
  ServerStats& st = m.stats;
  st.calls++;
  st.tokens += n;
  st.round_trip_ms += rtt;
  st.server_ms += reply.server_total_ns / 1e6;
  st.compute_ms += reply.server_compute_ns / 1e6;
  st.raw_bytes_sent += sent.raw_bytes;
  st.wire_bytes_sent += sent.wire_bytes;
  st.raw_bytes_received += reply.received.raw_bytes;
  st.wire_bytes_received += reply.received.wire_bytes;
  return std::move(reply.hidden);
}

// ---- public API ----

RemoteLayerExecutor::RemoteLayerExecutor(const ClientConfig& config)
    : impl_(std::make_unique<Impl>(config)) {
  impl_->hook = &before_hop_call;
}
RemoteLayerExecutor::~RemoteLayerExecutor() = default;

const ModelParams& RemoteLayerExecutor::params() const { return impl_->store.manifest().params; }
FragmentStore& RemoteLayerExecutor::store() { return impl_->store; }
const ClientConfig& RemoteLayerExecutor::config() const { return impl_->config; }

const Tokenizer& RemoteLayerExecutor::tokenizer() {
  if (!impl_->tokenizer) {
    impl_->tokenizer = std::make_unique<Tokenizer>(
        Tokenizer::from_manifest(impl_->store.manifest(), impl_->config.fragments_dir));
  }
  return *impl_->tokenizer;
}

std::vector<RouteHop> RemoteLayerExecutor::route() const {
  std::vector<RouteHop> out;
  for (const Hop& h : impl_->hops) {
    Group& g = impl_->groups[h.group];
    const Member& m = g.current();
    RouteHop r;
    r.server = m.spec->name;
    r.rpc = m.spec->rpc;
    r.http = m.spec->http;
    r.layer_begin = g.begin;
    r.layer_end = g.end;
    if (m.conn) {
      r.backend = m.conn->description().backend;
      r.device = m.conn->description().device;
      r.max_tokens_per_call = m.conn->description().max_tokens_per_call;
    }
    out.push_back(r);
  }
  return out;
}

SessionId RemoteLayerExecutor::open_session() {
  const SessionId id = impl_->next_session++;
  ClientSession& s = impl_->sessions[id];
  s.hops.resize(impl_->hops.size());
  try {
    for (size_t k = 0; k < impl_->hops.size(); ++k) {
      impl_->with_failover([&] { impl_->ensure(s, k, 0); });
    }
  } catch (...) {
    close_session(id);
    throw;
  }
  return id;
}

void RemoteLayerExecutor::close_session(SessionId id) {
  auto it = impl_->sessions.find(id);
  if (it == impl_->sessions.end()) return;
  for (size_t k = 0; k < it->second.hops.size(); ++k) {
    const HopSession& h = it->second.hops[k];
    Group& g = impl_->groups[impl_->hops[k].group];
    if (!h.valid || h.member >= g.members.size()) continue;
    Member& m = g.members[h.member];
    if (m.conn && m.generation == h.generation) m.conn->close_session(h.handle);
  }
  impl_->sessions.erase(it);
}

uint32_t RemoteLayerExecutor::session_length(SessionId id) const {
  return static_cast<uint32_t>(impl_->session(id).tokens.size());
}

const std::vector<int32_t>& RemoteLayerExecutor::session_tokens(SessionId id) const {
  return impl_->session(id).tokens;
}

std::vector<float> RemoteLayerExecutor::forward(SessionId id, std::span<const int32_t> tokens,
                                                bool all_logits) {
  Impl& im = *impl_;
  ClientSession& s = im.session(id);
  if (s.broken) {
    throw Error(ErrorCode::kEngineSession,
                "session " + std::to_string(id) + " failed earlier; close it and open another");
  }
  im.head->check_tokens(tokens);
  const uint64_t want = s.tokens.size() + tokens.size();
  if (want > im.config.session_max_tokens) {
    throw Error(ErrorCode::kClientSessionFull,
                "session " + std::to_string(id) + " holds " + std::to_string(s.tokens.size()) +
                    " tokens; " + std::to_string(tokens.size()) + " more would exceed "
                    "session_max_tokens = " + std::to_string(im.config.session_max_tokens));
  }
  const size_t vocab = im.head->vocab_size();
  const size_t dim = im.store.manifest().params.dim;
  std::vector<float> logits;
  try {
    for (size_t pos = 0; pos < tokens.size();) {
      const size_t c = std::min<size_t>(im.max_call, tokens.size() - pos);
      const auto chunk = tokens.subspan(pos, c);
      const uint32_t start = static_cast<uint32_t>(s.tokens.size());
      std::vector<float> hidden = im.embed(chunk);
      for (size_t k = 0; k < im.hops.size(); ++k) {
        hidden = im.with_failover([&] {
          im.ensure(s, k, start);
          return im.call(k, s.hops[k].handle, start, hidden);
        });
      }
      s.tokens.insert(s.tokens.end(), chunk.begin(), chunk.end());
      s.chunks.push_back(static_cast<uint32_t>(c));
      pos += c;
      const auto t0 = Clock::now();
      if (all_logits) {
        const size_t at = logits.size();
        logits.resize(at + c * vocab);
        im.head->logits(hidden, std::span<float>(logits).subspan(at));
      } else if (pos == tokens.size()) {
        logits.resize(vocab);
        im.head->logits(std::span<const float>(hidden).subspan((c - 1) * dim, dim), logits);
      }
      im.head_ms += ms_since(t0);
    }
  } catch (...) {
    // Some hops may hold the failed chunk and others not: the session cannot go on.
    s.broken = true;
    throw;
  }
  return logits;
}

ExecutorStats RemoteLayerExecutor::stats() const {
  ExecutorStats out;
  for (const Hop& h : impl_->hops) {
    const Group& g = impl_->groups[h.group];
    for (size_t i = 0; i < g.members.size(); ++i) {
      const Member& m = g.members[i];
      if (i == g.active || m.stats.calls > 0 || m.stats.failures > 0) out.servers.push_back(m.stats);
    }
  }
  out.failovers = impl_->failovers;
  out.replayed_tokens = impl_->replayed_tokens;
  out.head_ms = impl_->head_ms;
  return out;
}

void RemoteLayerExecutor::reset_stats() {
  for (Group& g : impl_->groups) {
    for (Member& m : g.members) {
      ServerStats fresh;
      fresh.name = m.stats.name;
      fresh.rpc = m.stats.rpc;
      fresh.layer_begin = m.stats.layer_begin;
      fresh.layer_end = m.stats.layer_end;
      m.stats = fresh;
    }
  }
  impl_->failovers = 0;
  impl_->replayed_tokens = 0;
  impl_->head_ms = 0;
}

}  // namespace lw
