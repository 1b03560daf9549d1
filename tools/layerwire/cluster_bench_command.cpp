// `layerwire bench --config FILE`: pp / tg speed across the cluster a client config
// describes, through RemoteLayerExecutor — pp N = one prefill of N tokens (cut into calls of
// the servers' max tokens per call), tg N = N decode steps of one token — median of --reps
// runs after a warm-up, plus per hop (server) the round trip per decode call, the server's
// own time and compute time, and the bytes per token on the wire vs raw. Token ids are
// random (seeded), so any store works; the head runs here as in generation.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "client/client_config.h"
#include "client/remote_executor.h"
#include "common/error.h"
#include "tools/layerwire/commands.h"

namespace lw::cli {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

struct Phase {
  std::string name;
  int tokens = 0;
  std::vector<double> seconds;
  ExecutorStats stats;  // of the last repetition
};

}  // namespace

int run_cluster_bench(const ClusterBenchOptions& o) {
  RemoteLayerExecutor ex(client_config_load(o.config));
  const ModelParams& p = ex.params();
  const uint32_t cap = ex.config().session_max_tokens;
  if (static_cast<uint32_t>(std::max(o.prompt, o.gen)) > cap) {
    throw Error(ErrorCode::kCliArgument,
                "bench: -p " + std::to_string(o.prompt) + " / -n " + std::to_string(o.gen) +
                    " exceed the config's session_max_tokens = " + std::to_string(cap));
  }
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(p.vocab_size) - 1);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (int32_t& x : t) x = pick(rng);
    return t;
  };
  std::vector<Phase> phases;
  if (o.prompt > 0) {
    Phase ph{"pp" + std::to_string(o.prompt), o.prompt, {}, {}};
    for (int rep = -1; rep < o.reps; ++rep) {
      const std::vector<int32_t> toks = random_tokens(o.prompt);
      const SessionId s = ex.open_session();
      ex.reset_stats();
      const auto t0 = Clock::now();
      ex.forward(s, toks, /*all_logits=*/false);
      const double t = std::chrono::duration<double>(Clock::now() - t0).count();
      ph.stats = ex.stats();
      ex.close_session(s);
      if (rep >= 0) ph.seconds.push_back(t);
    }
    phases.push_back(ph);
  }
  if (o.gen > 0) {
    Phase ph{"tg" + std::to_string(o.gen), o.gen, {}, {}};
    for (int rep = -1; rep < o.reps; ++rep) {
      const int steps = rep < 0 ? std::min(o.gen, 8) : o.gen;
      const SessionId s = ex.open_session();
      ex.reset_stats();
      const auto t0 = Clock::now();
      for (int i = 0; i < steps; ++i) {
        const int32_t one[1] = {pick(rng)};
        ex.forward(s, one, false);
      }
      const double t = std::chrono::duration<double>(Clock::now() - t0).count();
      ph.stats = ex.stats();
      ex.close_session(s);
      if (rep >= 0) ph.seconds.push_back(t);
    }
    phases.push_back(ph);
  }

  const std::vector<RouteHop> route = ex.route();
  if (o.json) {
    nlohmann::json j;
    j["model"] = {{"preset", p.preset}, {"n_layers", p.n_layers}, {"dim", p.dim},
                  {"vocab", p.vocab_size}};
    j["wire_dtype"] = wire_dtype_name(ex.config().wire_dtype);
    nlohmann::json tests = nlohmann::json::object();
    for (const Phase& ph : phases) {
      nlohmann::json hops = nlohmann::json::array();
      for (const ServerStats& s : ph.stats.servers) {
        hops.push_back({{"server", s.name},
                        {"layer_begin", s.layer_begin},
                        {"layer_end", s.layer_end},
                        {"calls", s.calls},
                        {"round_trip_ms_per_call", s.calls ? s.round_trip_ms / s.calls : 0},
                        {"server_ms_per_call", s.calls ? s.server_ms / s.calls : 0},
                        {"compute_ms_per_call", s.calls ? s.compute_ms / s.calls : 0}});
      }
      tests[ph.name] = {{"tokens", ph.tokens},
                        {"seconds", ph.seconds},
                        {"tokens_per_s", ph.tokens / median(ph.seconds)},
                        {"raw_bytes_per_token", ph.stats.raw_bytes() / double(ph.tokens)},
                        {"wire_bytes_per_token", ph.stats.wire_bytes() / double(ph.tokens)},
                        {"head_ms", ph.stats.head_ms},
                        {"hops", hops}};
    }
    j["tests"] = tests;
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("model %s: %u layers, dim %u, vocab %u; wire %s; %zu hops:", p.preset.c_str(),
              p.n_layers, p.dim, p.vocab_size, wire_dtype_name(ex.config().wire_dtype).c_str(),
              route.size());
  for (const RouteHop& h : route) {
    std::printf(" %s[%d-%d %s]", h.server.c_str(), h.layer_begin, h.layer_end - 1,
                h.backend.c_str());
  }
  std::printf("\n%-8s %12s %14s %14s\n", "test", "tokens/s", "raw B/token", "wire B/token");
  for (const Phase& ph : phases) {
    std::printf("%-8s %12.2f %14.0f %14.0f\n", ph.name.c_str(), ph.tokens / median(ph.seconds),
                ph.stats.raw_bytes() / double(ph.tokens),
                ph.stats.wire_bytes() / double(ph.tokens));
  }
  for (const Phase& ph : phases) {
    std::printf("\nper hop, %s (ms per call): %-16s %8s %10s %10s %10s %10s\n", ph.name.c_str(),
                "server", "calls", "rtt", "server", "compute", "net+codec");
    for (const ServerStats& s : ph.stats.servers) {
      if (!s.calls) continue;
      const double rtt = s.round_trip_ms / s.calls, srv = s.server_ms / s.calls;
      std::printf("%28s %-16s %8llu %10.3f %10.3f %10.3f %10.3f\n", "", s.name.c_str(),
                  static_cast<unsigned long long>(s.calls), rtt, srv, s.compute_ms / s.calls,
                  rtt - srv);
    }
    std::printf("%28s head (embed + output) %.1f ms in total\n", "", ph.stats.head_ms);
  }
  return kExitOk;
}

}  // namespace lw::cli
