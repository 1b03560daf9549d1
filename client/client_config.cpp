#include "client/client_config.h"

#include <sys/stat.h>

#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "common/config.h"
#include "common/error.h"
#include "common/file_util.h"

namespace lw {
namespace {

using nlohmann::json;

[[noreturn]] void wrong_type(const std::string& source, const std::string& key, const json& v,
                             const std::string& expected) {
  throw Error(ErrorCode::kJsonField, source + ": field \"" + key + "\" must be " + expected +
                                         ", got " + v.type_name() + " " + v.dump());
}
[[noreturn]] void bad_value(const std::string& source, const std::string& key,
                            const std::string& value, const std::string& why) {
  throw Error(ErrorCode::kCfgValue,
              source + ": field \"" + key + "\" = " + value + " is invalid: " + why);
}

std::string get_string(const json& v, const std::string& source, const std::string& key) {
  if (!v.is_string()) wrong_type(source, key, v, "a string");
  return v.get<std::string>();
}

template <typename T>
T get_uint(const json& v, const std::string& source, const std::string& key) {
  if (!v.is_number_unsigned()) wrong_type(source, key, v, "a non-negative integer");
  const uint64_t x = v.get<uint64_t>();
  if (x > std::numeric_limits<T>::max()) {
    bad_value(source, key, std::to_string(x),
              "at most " + std::to_string(std::numeric_limits<T>::max()));
  }
  return static_cast<T>(x);
}

int get_int(const json& v, const std::string& source, const std::string& key) {
  if (!v.is_number_integer()) wrong_type(source, key, v, "an integer");
  const int64_t x = v.get<int64_t>();
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max()) {
    bad_value(source, key, std::to_string(x), "out of the int range");
  }
  return static_cast<int>(x);
}

void check_layers_text(const std::string& text, const std::string& source,
                       const std::string& key) {
  // Syntax only ("A-B" or "N", A <= B); the model's layer count is checked after handshake.
  auto parse = [](std::string_view s, int* out) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size() && *out >= 0;
  };
  const size_t dash = text.find('-');
  int a = 0, b = 0;
  const bool ok = dash == std::string::npos
                      ? parse(text, &a)
                      : parse(std::string_view(text).substr(0, dash), &a) &&
                            parse(std::string_view(text).substr(dash + 1), &b) && a <= b;
  if (!ok) bad_value(source, key, "\"" + text + "\"", "expected \"A-B\" (inclusive, A <= B) or \"N\"");
}

std::string scalar_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

ServerSpec parse_server(const json& obj, const std::string& source, const std::string& path,
                        bool allow_replicas, std::vector<ServerSpec>* replicas) {
  if (!obj.is_object()) wrong_type(source, path, obj, "an object");
  ServerSpec spec;
  bool have_rpc = false;
  for (const auto& [key, v] : obj.items()) {
    const std::string field = path + "." + key;
    if (key == "name") {
      spec.name = get_string(v, source, field);
      if (spec.name.empty()) bad_value(source, field, "\"\"", "must not be empty");
    } else if (key == "rpc") {
      spec.rpc = get_string(v, source, field);
      parse_host_port(spec.rpc, source + ": " + field);
      have_rpc = true;
    } else if (key == "http") {
      spec.http = get_string(v, source, field);
      if (!spec.http.empty()) parse_host_port(spec.http, source + ": " + field);
    } else if (key == "layers" && allow_replicas) {
      spec.layers = get_string(v, source, field);
      if (!spec.layers.empty()) check_layers_text(spec.layers, source, field);
    } else if (key == "local") {
      if (!v.is_object()) wrong_type(source, field, v, "an object of layer_server options");
      // The keys and types must be ServerConfig's: its parser names the offending key.
      server_config_from_json(v.dump(), source + ": " + field);
      spec.local = true;
      for (const auto& [k, x] : v.items()) {
        if (!k.empty() && k[0] == '_') continue;  // comment
        if (x.is_object() || x.is_array() || x.is_null()) {
          wrong_type(source, field + "." + k, x, "a string, number or boolean");
        }
        spec.local_options.emplace_back(k, scalar_text(x));
      }
    } else if (key == "replicas" && allow_replicas) {
      if (!v.is_array()) wrong_type(source, field, v, "an array of server objects");
      for (size_t i = 0; i < v.size(); ++i) {
        replicas->push_back(parse_server(v[i], source, field + "[" + std::to_string(i) + "]",
                                         false, nullptr));
      }
    } else if (!key.empty() && key[0] == '_') {
      // a comment
    } else {
      throw Error(ErrorCode::kJsonField,
                  source + ": unknown field \"" + field + "\" (allowed: name, rpc, http" +
                      std::string(allow_replicas ? ", layers, local, replicas" : ", local") + ")");
    }
  }
  if (!have_rpc) {
    throw Error(ErrorCode::kJsonField, source + ": field \"" + path + ".rpc\" is missing");
  }
  return spec;
}

CompressionMode parse_compression(const std::string& text, const std::string& source) {
  if (text == "off") return CompressionMode::Off;
  if (text == "auto") return CompressionMode::Auto;
  if (text == "zstd") return CompressionMode::ShuffleZstd;
  bad_value(source, "compression", "\"" + text + "\"", "expected off, zstd or auto");
}

std::string resolve(const std::filesystem::path& base, const std::string& p) {
  if (p.empty() || base.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (base / p).lexically_normal().string();
}

}  // namespace

std::vector<const ServerSpec*> ClientConfig::all_servers() const {
  std::vector<const ServerSpec*> out;
  for (const ServerGroup& g : servers) {
    out.push_back(&g.primary);
    for (const ServerSpec& r : g.replicas) out.push_back(&r);
  }
  return out;
}

std::pair<std::string, uint16_t> parse_host_port(const std::string& address,
                                                 const std::string& field) {
  const size_t colon = address.rfind(':');
  auto bad = [&](const std::string& why) -> std::pair<std::string, uint16_t> {
    throw Error(ErrorCode::kCfgValue,
                field + " = \"" + address + "\" is not a valid address: " + why);
  };
  if (colon == std::string::npos || colon == 0) return bad("expected \"host:port\"");
  std::string host = address.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return bad("unbalanced [] around an IPv6 host");
  } else if (host.find(':') != std::string::npos) {
    return bad("an IPv6 host must be written in [] brackets");
  }
  const std::string port_text = address.substr(colon + 1);
  unsigned port = 0;
  const auto [p, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || p != port_text.data() + port_text.size() ||
      port == 0 || port > 65535) {
    return bad("port must be 1..65535");
  }
  return {host, static_cast<uint16_t>(port)};
}

ClientConfig client_config_from_json(const std::string& text, const std::string& source,
                                     const std::filesystem::path& base_dir) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(ErrorCode::kJsonParse, source + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) {
    throw Error(ErrorCode::kJsonParse,
                source + ": the client config must be a JSON object, got " + root.type_name());
  }
  ClientConfig c;
  bool have_servers = false;
  for (const auto& [key, v] : root.items()) {
    if (key == "fragments_dir") {
      c.fragments_dir = get_string(v, source, key);
    } else if (key == "architecture") {
      c.architecture = get_string(v, source, key);
    } else if (key == "servers") {
      if (!v.is_array()) wrong_type(source, key, v, "an array of server objects");
      have_servers = true;
      for (size_t i = 0; i < v.size(); ++i) {
        ServerGroup g;
        g.primary = parse_server(v[i], source, "servers[" + std::to_string(i) + "]", true,
                                 &g.replicas);
        c.servers.push_back(std::move(g));
      }
    } else if (key == "auth_token_file") {
      c.auth_token_file = get_string(v, source, key);
    } else if (key == "wire_dtype") {
      const std::string d = get_string(v, source, key);
      if (!wire_dtype_from_name(d, &c.wire_dtype)) {
        bad_value(source, key, "\"" + d + "\"", "expected f32, f16 or bf16");
      }
    } else if (key == "compression") {
      c.compression = parse_compression(get_string(v, source, key), source);
    } else if (key == "zstd_level") {
      c.zstd_level = get_int(v, source, key);
    } else if (key == "connect_timeout_ms") {
      c.connect_timeout_ms = get_uint<uint32_t>(v, source, key);
    } else if (key == "call_timeout_ms") {
      c.call_timeout_ms = get_uint<uint32_t>(v, source, key);
    } else if (key == "retries") {
      c.retries = get_uint<uint32_t>(v, source, key);
    } else if (key == "backoff_ms") {
      c.backoff_ms = get_uint<uint32_t>(v, source, key);
    } else if (key == "backoff_max_ms") {
      c.backoff_max_ms = get_uint<uint32_t>(v, source, key);
    } else if (key == "session_max_tokens") {
      c.session_max_tokens = get_uint<uint32_t>(v, source, key);
    } else if (key == "max_tokens_per_call") {
      c.max_tokens_per_call = get_uint<uint32_t>(v, source, key);
    } else if (key == "head_backend") {
      c.head_backend = get_string(v, source, key);
    } else if (key == "head_device") {
      c.head_device = get_int(v, source, key);
    } else if (key == "head_threads") {
      c.head_threads = get_uint<unsigned>(v, source, key);
    } else if (!key.empty() && key[0] == '_') {
      // Keys starting with "_" are comments (as in every layerwire config file).
    } else {
      throw Error(ErrorCode::kJsonField, source + ": unknown field \"" + key + "\"");
    }
  }
  if (!have_servers || c.servers.empty()) {
    throw Error(ErrorCode::kJsonField,
                source + ": field \"servers\" is missing or empty (list at least one server)");
  }
  if (c.fragments_dir.empty()) bad_value(source, "fragments_dir", "\"\"", "must not be empty");
  if (c.zstd_level < 1 || c.zstd_level > 19) {
    bad_value(source, "zstd_level", std::to_string(c.zstd_level), "must be 1..19");
  }
  if (c.connect_timeout_ms == 0) bad_value(source, "connect_timeout_ms", "0", "must be > 0");
  if (c.call_timeout_ms == 0) bad_value(source, "call_timeout_ms", "0", "must be > 0");
  if (c.backoff_max_ms < c.backoff_ms) {
    bad_value(source, "backoff_max_ms", std::to_string(c.backoff_max_ms),
              "must be >= backoff_ms (" + std::to_string(c.backoff_ms) + ")");
  }
  if (c.session_max_tokens == 0) bad_value(source, "session_max_tokens", "0", "must be > 0");
  if (c.head_backend != "cpu" && c.head_backend != "cuda") {
    bad_value(source, "head_backend", "\"" + c.head_backend + "\"", "expected cpu or cuda");
  }
  if (c.head_device < 0) bad_value(source, "head_device", std::to_string(c.head_device), ">= 0");

  // Names: defaults, then uniqueness over every server.
  std::set<std::string> names, rpcs;
  for (size_t i = 0; i < c.servers.size(); ++i) {
    ServerGroup& g = c.servers[i];
    if (g.primary.name.empty()) g.primary.name = "server-" + std::to_string(i);
    for (size_t j = 0; j < g.replicas.size(); ++j) {
      ServerSpec& r = g.replicas[j];
      if (r.name.empty()) r.name = g.primary.name + "-replica-" + std::to_string(j);
      r.layers = g.primary.layers;
    }
  }
  for (const ServerSpec* s : c.all_servers()) {
    if (!names.insert(s->name).second) {
      bad_value(source, "servers[].name", "\"" + s->name + "\"", "two servers share this name");
    }
    if (!rpcs.insert(s->rpc).second) {
      bad_value(source, "servers[].rpc", "\"" + s->rpc + "\"",
                "two servers share this address (server \"" + s->name + "\")");
    }
  }
  c.fragments_dir = resolve(base_dir, c.fragments_dir);
  c.auth_token_file = resolve(base_dir, c.auth_token_file);
  return c;
}

ClientConfig client_config_load(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  return client_config_from_json(text, path.string(), path.parent_path());
}

std::string client_load_token(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    throw Error(ErrorCode::kAuthFile, "auth token file " + file.string() + " cannot be read");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    throw Error(ErrorCode::kAuthFile, "auth token file " + file.string() +
                                          " may be read or written by group or others; run "
                                          "chmod 600 " + file.string());
  }
  std::string text;
  try {
    text = read_text_file(file);
  } catch (const Error&) {
    throw Error(ErrorCode::kAuthFile, "auth token file " + file.string() + " cannot be read");
  }
  const size_t nl = text.find('\n');
  if (nl != std::string::npos) text.resize(nl);
  const auto ws = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; };
  while (!text.empty() && ws(text.back())) text.pop_back();
  size_t b = 0;
  while (b < text.size() && ws(text[b])) ++b;
  text.erase(0, b);
  if (text.empty()) {
    throw Error(ErrorCode::kAuthFile, "auth token file " + file.string() + " holds no token");
  }
  return text;
}

}  // namespace lw
