// `layerwire status`: one table row per server of a client config (primaries and replicas):
// layers, health, HTTP latency, open sessions, KV used / budget, and whether its manifest
// digest matches the client's fragment store — read from each server's HTTP control plane
// (/health, /info). `--launch-plan` prints, for scripts/cluster.sh, the layer_server
// arguments of every server marked "local" in the config.
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "client/client_config.h"
#include "common/error.h"
#include "fragments/manifest.h"
#include "tools/layerwire/commands.h"

namespace lw::cli {
namespace {

struct Row {
  std::string name, role, address, layers = "-", health = "unreachable", latency = "-",
                                     sessions = "-", kv = "-", digest = "-", note;
  bool ok = false;
};

Row probe(const ServerSpec& spec, const std::string& role, const std::string& local_digest,
          int timeout_ms) {
  Row r;
  r.name = spec.name;
  r.role = role;
  r.address = spec.rpc;
  if (spec.http.empty()) {
    r.health = "no http";
    r.note = "no \"http\" address in the config";
    return r;
  }
  const auto [host, port] = parse_host_port(spec.http, "server " + spec.name + " http");
  httplib::Client http(host, port);
  http.set_connection_timeout(std::chrono::milliseconds(timeout_ms));
  http.set_read_timeout(std::chrono::milliseconds(timeout_ms));
  const auto t0 = std::chrono::steady_clock::now();
  auto health = http.Get("/health");
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!health) {
    r.note = "GET http://" + spec.http + "/health: " + httplib::to_string(health.error());
    return r;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", ms);
  r.latency = buf;
  try {
    const auto h = nlohmann::json::parse(health->body);
    r.health = h.value("status", "?");
    if (!h.value("reason", "").empty()) r.note = h.value("reason", "");
  } catch (const std::exception&) {
    r.health = "bad answer";
  }
  auto info = http.Get("/info");
  if (!info || info->status != 200) return r;
  try {
    const auto j = nlohmann::json::parse(info->body);
    if (j.contains("layer_begin") && j.contains("layer_end")) {
      const int b = j["layer_begin"].get<int>(), e = j["layer_end"].get<int>();
      r.layers = e - b == 1 ? std::to_string(b) : std::to_string(b) + "-" + std::to_string(e - 1);
    }
    if (j.contains("sessions")) r.sessions = std::to_string(j["sessions"].value("open", 0));
    if (j.contains("kv_used_tokens") && j.contains("limits")) {
      r.kv = std::to_string(j["kv_used_tokens"].get<uint64_t>()) + "/" +
             std::to_string(j["limits"].value("kv_budget_tokens", uint64_t{0}));
    }
    if (j.contains("digest")) {
      const std::string d = j["digest"].get<std::string>();
      r.digest = local_digest.empty() ? "?" : (d == local_digest ? "match" : "MISMATCH");
      if (d != local_digest && !local_digest.empty()) {
        r.note = "server digest " + d + ", client " + local_digest;
      }
    }
  } catch (const std::exception& e) {
    r.note = std::string("bad /info: ") + e.what();
  }
  r.ok = r.health == "ok" && r.digest != "MISMATCH";
  return r;
}

std::string flag_of(const std::string& key) {
  std::string f = "--" + key;
  for (char& c : f) c = c == '_' ? '-' : c;
  return f;
}

class StatusCommand : public Command {
 public:
  explicit StatusCommand(CLI::App& parent) {
    app = parent.add_subcommand(
        "status",
        "Show every server of a client config (primaries and replicas): layers, health, "
        "HTTP latency, open sessions, KV used/budget and whether its manifest digest "
        "matches the client's fragment store. Reads each server's /health and /info.");
    app->add_option("-c,--config", config_, "client config (config/client.json)")
        ->required()
        ->check(CLI::ExistingFile);
    app->add_option("--timeout-ms", timeout_ms_, "HTTP timeout per request")
        ->check(CLI::Range(1, 600000))
        ->capture_default_str();
    app->add_flag("--json", json_, "print a JSON array instead of the table");
    app->add_flag("--launch-plan", plan_,
                  "print the layer_server arguments of the servers marked \"local\" (one "
                  "tab-separated line per server: name, then --flag=value arguments); used by "
                  "scripts/cluster.sh");
    app->footer(
        "Examples:\n"
        "  layerwire status --config config/client.json\n"
        "  layerwire status -c config/demo-cluster.json --json\n"
        "Exit code 0 when every server is healthy and matches; 1 otherwise.\n");
  }

  int run() override {
    const ClientConfig c = client_config_load(config_);
    if (plan_) return print_plan(c);
    std::string digest;
    try {
      digest = manifest_load(c.fragments_dir).digest.hex();
    } catch (const Error&) {
      // No local store: the digest column shows "?".
    }
    std::vector<Row> rows;
    for (const ServerGroup& g : c.servers) {
      rows.push_back(probe(g.primary, "primary", digest, timeout_ms_));
      for (const ServerSpec& r : g.replicas) {
        rows.push_back(probe(r, "replica", digest, timeout_ms_));
      }
    }
    bool all_ok = true;
    for (const Row& r : rows) all_ok = all_ok && r.ok;
    if (json_) {
      nlohmann::json out = nlohmann::json::array();
      for (const Row& r : rows) {
        out.push_back({{"server", r.name}, {"role", r.role}, {"rpc", r.address},
                       {"layers", r.layers}, {"health", r.health}, {"latency_ms", r.latency},
                       {"sessions", r.sessions}, {"kv", r.kv}, {"digest", r.digest},
                       {"note", r.note}});
      }
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      std::printf("%-16s %-8s %-22s %-7s %-11s %10s %8s %15s %-8s\n", "server", "role", "rpc",
                  "layers", "health", "latency ms", "sessions", "kv used/budget", "digest");
      for (const Row& r : rows) {
        std::printf("%-16s %-8s %-22s %-7s %-11s %10s %8s %15s %-8s%s%s\n", r.name.c_str(),
                    r.role.c_str(), r.address.c_str(), r.layers.c_str(), r.health.c_str(),
                    r.latency.c_str(), r.sessions.c_str(), r.kv.c_str(), r.digest.c_str(),
                    r.note.empty() ? "" : "  ", r.note.c_str());
      }
    }
    return all_ok ? kExitOk : 1;
  }

 private:
  int print_plan(const ClientConfig& c) {
    for (const ServerSpec* s : c.all_servers()) {
      if (!s->local) continue;
      // Defaults from the client config, then the server's own "local" options on top.
      std::vector<std::pair<std::string, std::string>> opts = {
          {"fragments_dir", c.fragments_dir}, {"rpc_listen", s->rpc}, {"http_listen", s->http}};
      if (!s->layers.empty()) opts.emplace_back("layers", s->layers);
      for (const auto& [k, v] : s->local_options) {
        bool replaced = false;
        for (auto& o : opts) {
          if (o.first == k) {
            o.second = v;
            replaced = true;
          }
        }
        if (!replaced) opts.emplace_back(k, v);
      }
      std::string line = s->name;
      for (const auto& [k, v] : opts) {
        if (v.find_first_of("\t\n") != std::string::npos) {
          throw Error(ErrorCode::kCfgValue, config_ + ": server " + s->name + ": local option " +
                                                k + " holds a tab or newline");
        }
        line += "\t" + flag_of(k) + "=" + v;  // one field, even when v is empty
      }
      std::printf("%s\n", line.c_str());
    }
    return kExitOk;
  }

  std::string config_;
  int timeout_ms_ = 2000;
  bool json_ = false, plan_ = false;
};

}  // namespace

std::unique_ptr<Command> make_status(CLI::App& parent, const GlobalOptions&) {
  return std::make_unique<StatusCommand>(parent);
}

}  // namespace lw::cli
