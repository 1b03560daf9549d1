#include "common/config.h"

#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "common/error.h"
#include "common/file_util.h"

namespace lw {

namespace {

using nlohmann::json;

std::string type_name(const json& value) { return value.type_name(); }

template <typename T>
void read_value(const json& value, const std::string& source, const std::string& key, T* out) {
  auto wrong = [&](const std::string& expected) {
    throw Error(ErrorCode::kJsonField, source + ": field \"" + key + "\" must be " + expected +
                                           ", got " + type_name(value) + " " + value.dump());
  };
  if constexpr (std::is_same_v<T, std::string>) {
    if (!value.is_string()) wrong("a string");
    *out = value.get<std::string>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!value.is_number_integer()) wrong("an integer");
    if constexpr (std::is_unsigned_v<T>) {
      if (value.is_number_unsigned()) {
        const uint64_t v = value.get<uint64_t>();
        if (v > std::numeric_limits<T>::max())
          wrong("an integer of at most " + std::to_string(std::numeric_limits<T>::max()));
        *out = static_cast<T>(v);
      } else {
        wrong("a non-negative integer");
      }
    } else {
      const int64_t v = value.get<int64_t>();
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
        wrong("an integer in range");
      }
      *out = static_cast<T>(v);
    }
  }
}

// Every field of ServerConfig once: key -> reader / writer.
struct Field {
  std::function<void(const json&, const std::string&, ServerConfig*)> read;
  std::function<json(const ServerConfig&)> write;
};

template <typename T>
Field make_field(const char* key, T ServerConfig::*member) {
  return Field{[key, member](const json& v, const std::string& source, ServerConfig* c) {
                 read_value(v, source, key, &(c->*member));
               },
               [member](const ServerConfig& c) { return json(c.*member); }};
}

const std::map<std::string, Field>& server_fields() {
  static const std::map<std::string, Field> fields = {
      {"fragments_dir", make_field("fragments_dir", &ServerConfig::fragments_dir)},
      {"layers", make_field("layers", &ServerConfig::layers)},
      {"rpc_listen", make_field("rpc_listen", &ServerConfig::rpc_listen)},
      {"http_listen", make_field("http_listen", &ServerConfig::http_listen)},
      {"backend", make_field("backend", &ServerConfig::backend)},
      {"device", make_field("device", &ServerConfig::device)},
      {"threads", make_field("threads", &ServerConfig::threads)},
      {"auth_token_file", make_field("auth_token_file", &ServerConfig::auth_token_file)},
      {"kv_budget_tokens", make_field("kv_budget_tokens", &ServerConfig::kv_budget_tokens)},
      {"kv_block_size", make_field("kv_block_size", &ServerConfig::kv_block_size)},
      {"max_sessions", make_field("max_sessions", &ServerConfig::max_sessions)},
      {"session_ttl_seconds",
       make_field("session_ttl_seconds", &ServerConfig::session_ttl_seconds)},
      {"max_tokens_per_call",
       make_field("max_tokens_per_call", &ServerConfig::max_tokens_per_call)},
      {"max_message_bytes", make_field("max_message_bytes", &ServerConfig::max_message_bytes)},
      {"max_queued_calls", make_field("max_queued_calls", &ServerConfig::max_queued_calls)},
      {"drain_timeout_seconds",
       make_field("drain_timeout_seconds", &ServerConfig::drain_timeout_seconds)},
      {"compression", make_field("compression", &ServerConfig::compression)},
      {"zstd_level", make_field("zstd_level", &ServerConfig::zstd_level)},
      {"compress_min_bytes", make_field("compress_min_bytes", &ServerConfig::compress_min_bytes)},
      {"verify_jobs", make_field("verify_jobs", &ServerConfig::verify_jobs)},
      {"log_level", make_field("log_level", &ServerConfig::log_level)},
      {"compute", make_field("compute", &ServerConfig::compute)},
  };
  return fields;
}

[[noreturn]] void bad_value(const std::string& field, const std::string& value,
                            const std::string& expected) {
  throw Error(ErrorCode::kCfgValue, "config field \"" + field + "\" = " + value + ": " + expected);
}

bool valid_listen(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
  const std::string port = address.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  return std::stoul(port) <= 65535;
}

}  // namespace

ServerConfig server_config_from_json(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(ErrorCode::kJsonParse, source + ": " + e.what());
  }
  if (!root.is_object()) {
    throw Error(ErrorCode::kJsonParse,
                source + ": the config must be a JSON object, got " + type_name(root));
  }
  ServerConfig config;
  const auto& fields = server_fields();
  for (const auto& [key, value] : root.items()) {
    if (!key.empty() && key[0] == '_') continue;  // "_comment" keys document the file
    const auto it = fields.find(key);
    if (it == fields.end()) {
      std::string known;
      for (const auto& [name, field] : fields) known += (known.empty() ? "" : ", ") + name;
      throw Error(ErrorCode::kJsonField,
                  source + ": unknown field \"" + key + "\" (known fields: " + known + ")");
    }
    it->second.read(value, source, &config);
  }
  return config;
}

ServerConfig server_config_load(const std::filesystem::path& path) {
  return server_config_from_json(read_text_file(path), path.string());
}

void server_config_validate(const ServerConfig& c) {
  if (c.fragments_dir.empty()) bad_value("fragments_dir", "\"\"", "must name a folder");
  if (!valid_listen(c.rpc_listen)) {
    bad_value("rpc_listen", "\"" + c.rpc_listen + "\"", "must be host:port (port 0..65535)");
  }
  if (!c.http_listen.empty() && !valid_listen(c.http_listen)) {
    bad_value("http_listen", "\"" + c.http_listen + "\"",
              "must be host:port (port 0..65535) or empty");
  }
  if (c.backend != "cpu" && c.backend != "cuda") {
    bad_value("backend", "\"" + c.backend + "\"", "must be \"cpu\" or \"cuda\"");
  }
  if (c.device < 0) bad_value("device", std::to_string(c.device), "must be >= 0");
  if (c.kv_budget_tokens < 1 || c.kv_budget_tokens > (1ull << 31)) {
    bad_value("kv_budget_tokens", std::to_string(c.kv_budget_tokens), "must be 1..2^31");
  }
  if (c.kv_block_size < 1 || c.kv_block_size > 256) {
    bad_value("kv_block_size", std::to_string(c.kv_block_size), "must be 1..256");
  }
  if (c.max_sessions < 1) bad_value("max_sessions", "0", "must be at least 1");
  if (c.max_tokens_per_call < 1 || c.max_tokens_per_call > (1u << 20)) {
    bad_value("max_tokens_per_call", std::to_string(c.max_tokens_per_call), "must be 1..2^20");
  }
  if (c.max_message_bytes < 4096 || c.max_message_bytes > (1ull << 31)) {
    bad_value("max_message_bytes", std::to_string(c.max_message_bytes),
              "must be 4096..2^31 (2 GiB)");
  }
  if (c.max_queued_calls < 1) bad_value("max_queued_calls", "0", "must be at least 1");
  if (c.compression != "auto" && c.compression != "off" && c.compression != "zstd" &&
      c.compression != "shuffle-zstd") {
    bad_value("compression", "\"" + c.compression + "\"",
              "must be \"auto\", \"off\", \"zstd\" or \"shuffle-zstd\"");
  }
  if (c.zstd_level < -7 || c.zstd_level > 19) {
    bad_value("zstd_level", std::to_string(c.zstd_level), "must be -7..19");
  }
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
  bool level_ok = false;
  for (const char* level : kLevels) level_ok |= c.log_level == level;
  if (!level_ok) {
    bad_value("log_level", "\"" + c.log_level + "\"",
              "must be trace, debug, info, warn, error or off");
  }
  if (c.compute != "layers" && c.compute != "noop") {
    bad_value("compute", "\"" + c.compute + "\"", "must be \"layers\" or \"noop\"");
  }
}

std::string server_config_to_json(const ServerConfig& config) {
  json root = json::object();
  for (const auto& [key, field] : server_fields()) root[key] = field.write(config);
  return root.dump(2);
}

}  // namespace lw
