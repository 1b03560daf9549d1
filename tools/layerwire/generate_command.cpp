// `layerwire generate`: one completion through RemoteLayerExecutor across the layer servers
// of a client config — streams the text as tokens arrive, then prints the timings (time to
// first token, prefill / decode tokens/s, per-server latency, raw vs wire bytes); --json
// prints one JSON object instead. Also holds the sampling flags and the timing report shared
// with `chat`.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "client/client_config.h"
#include "client/remote_executor.h"
#include "client/tokenizer.h"
#include "common/error.h"
#include "tools/layerwire/commands.h"

namespace lw::cli {

std::string terminal_text(const std::string& text) {
  std::string out;
  for (unsigned char ch : text) {
    if (ch < 0x20 && ch != '\n' && ch != '\t') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else if (ch == 0x7f) {
      out += "\\x7f";
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

void add_sampling_options(CLI::App& app, SamplingFlags& f) {
  app.add_option("-n,--max-tokens", f.options.max_tokens, "tokens to generate at most")
      ->check(CLI::Range(1u, 1u << 20))
      ->capture_default_str();
  app.add_option("--temperature", f.sampling.temperature, "0 = greedy")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--top-k", f.sampling.top_k, "0 = off")->capture_default_str();
  app.add_option("--top-p", f.sampling.top_p, "1 = off")->capture_default_str();
  app.add_option("--min-p", f.sampling.min_p, "0 = off")->capture_default_str();
  app.add_option("--repeat-penalty", f.sampling.repeat_penalty, "1 = off")
      ->capture_default_str();
  app.add_option("--repeat-last-n", f.sampling.repeat_last_n, "penalty window in tokens")
      ->capture_default_str();
  app.add_option("--seed", f.sampling.seed, "sampling seed (same seed, same text)")
      ->capture_default_str();
  app.add_flag("--greedy", f.greedy, "argmax decoding (temperature 0, no penalty)");
  app.add_flag("--ignore-eos", f.ignore_eos, "keep generating after the end-of-text token");
}

void SamplingFlags::finish() {
  if (greedy) {
    sampling.temperature = 0;
    sampling.repeat_penalty = 1;
  }
  options.stop_at_eos = !ignore_eos;
  sampling_params_check(sampling);
}

void print_generation_report(const GenerateResult& r, FILE* out) {
  const GenerateTimings& t = r.timings;
  std::fprintf(out,
               "\n-- %zu prompt tokens, %zu generated (%s)\n"
               "   time to first token %.1f ms | prefill %.1f tok/s | decode %.1f tok/s | "
               "total %.1f ms\n",
               r.prompt_tokens.size(), r.tokens.size(), r.finish_reason.c_str(), t.ttft_ms,
               t.prefill_tok_s, t.decode_tok_s, t.total_ms);
  std::fprintf(out, "   %-16s %-7s %6s %10s %10s %10s %12s %12s\n", "server", "layers", "calls",
               "rtt ms/call", "server ms", "compute ms", "raw bytes", "wire bytes");
  for (const ServerStats& s : r.stats.servers) {
    const double per = s.calls ? s.round_trip_ms / s.calls : 0;
    std::fprintf(out, "   %-16s %-7s %6llu %10.3f %10.3f %10.3f %12llu %12llu\n", s.name.c_str(),
                 (std::to_string(s.layer_begin) + "-" + std::to_string(s.layer_end - 1)).c_str(),
                 static_cast<unsigned long long>(s.calls), per,
                 s.calls ? s.server_ms / s.calls : 0, s.calls ? s.compute_ms / s.calls : 0,
                 static_cast<unsigned long long>(s.raw_bytes_sent + s.raw_bytes_received),
                 static_cast<unsigned long long>(s.wire_bytes_sent + s.wire_bytes_received));
  }
  std::fprintf(out, "   head (embedding + output) %.1f ms; failovers %llu (replayed %llu tokens)\n",
               r.stats.head_ms, static_cast<unsigned long long>(r.stats.failovers),
               static_cast<unsigned long long>(r.stats.replayed_tokens));
}

std::string generation_json(const GenerateResult& r) {
  nlohmann::json servers = nlohmann::json::array();
  for (const ServerStats& s : r.stats.servers) {
    servers.push_back({{"name", s.name},
                       {"rpc", s.rpc},
                       {"layer_begin", s.layer_begin},
                       {"layer_end", s.layer_end},
                       {"calls", s.calls},
                       {"tokens", s.tokens},
                       {"round_trip_ms", s.round_trip_ms},
                       {"server_ms", s.server_ms},
                       {"compute_ms", s.compute_ms},
                       {"raw_bytes_sent", s.raw_bytes_sent},
                       {"wire_bytes_sent", s.wire_bytes_sent},
                       {"raw_bytes_received", s.raw_bytes_received},
                       {"wire_bytes_received", s.wire_bytes_received},
                       {"failures", s.failures}});
  }
  const GenerateTimings& t = r.timings;
  nlohmann::json j = {
      {"text", r.text},
      {"prompt_tokens", r.prompt_tokens},
      {"tokens", r.tokens},
      {"finish_reason", r.finish_reason},
      {"timings",
       {{"ttft_ms", t.ttft_ms},
        {"prefill_ms", t.prefill_ms},
        {"decode_ms", t.decode_ms},
        {"total_ms", t.total_ms},
        {"prefill_tok_s", t.prefill_tok_s},
        {"decode_tok_s", t.decode_tok_s}}},
      {"servers", servers},
      {"failovers", r.stats.failovers},
      {"replayed_tokens", r.stats.replayed_tokens},
      {"raw_bytes", r.stats.raw_bytes()},
      {"wire_bytes", r.stats.wire_bytes()},
  };
  // Generated text may hold invalid UTF-8 (random models): replace rather than throw.
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

class GenerateCommand : public Command {
 public:
  explicit GenerateCommand(CLI::App& parent) {
    app = parent.add_subcommand(
        "generate",
        "Generate a completion across the layer servers of a client config: the head "
        "(embedding, output) runs here, the layers on the servers. Streams the text as it "
        "comes, then prints the timings and per-server statistics.");
    app->add_option("-c,--config", config_, "client config (config/client.json)")
        ->required()
        ->check(CLI::ExistingFile);
    auto* prompt = app->add_option("-p,--prompt", prompt_, "prompt text");
    auto* tokens = app->add_option("--tokens", tokens_, "prompt as token ids, e.g. 1,15,27");
    prompt->excludes(tokens);
    app->add_flag("--no-bos", no_bos_, "do not prepend the BOS token to --prompt");
    app->add_flag("--special", flags_.options.parse_special,
                  "parse control tokens such as [INST] written in --prompt");
    app->add_flag("--json", json_, "print one JSON object (text, tokens, timings, servers)");
    add_sampling_options(*app, flags_);
    app->footer(
        "Examples:\n"
        "  layerwire generate --config config/client.json --prompt \"The capital of France\"\n"
        "  layerwire generate -c config/demo-cluster.json -p \"Hello\" -n 32 --greedy --json\n"
        "  layerwire generate -c client.json --tokens 1,15,27 --temperature 0.7 --seed 42\n");
  }

  int run() override {
    if (prompt_.empty() && tokens_.empty()) {
      throw Error(ErrorCode::kCliArgument, "generate: give --prompt TEXT or --tokens IDS");
    }
    flags_.finish();
    flags_.options.add_bos = !no_bos_;
    RemoteLayerExecutor ex(client_config_load(config_));
    TokenCallback stream;
    if (!json_) {
      stream = [](int32_t, const std::string& raw) {
        const std::string text = terminal_text(raw);
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
        return true;
      };
    }
    GenerateResult r;
    if (!tokens_.empty()) {
      const std::vector<int32_t> ids = parse_token_list(tokens_);
      const SessionId s = ex.open_session();
      r = ex.generate_tokens(s, ids, flags_.sampling, flags_.options, stream);
      ex.close_session(s);
    } else {
      if (!json_) {
        std::fwrite(prompt_.data(), 1, prompt_.size(), stdout);
        std::fflush(stdout);
      }
      r = ex.generate(prompt_, flags_.sampling, flags_.options, stream);
    }
    if (json_) {
      std::printf("%s\n", generation_json(r).c_str());
    } else {
      print_generation_report(r, stdout);
    }
    return kExitOk;
  }

 private:
  std::string config_, prompt_, tokens_;
  bool no_bos_ = false, json_ = false;
  SamplingFlags flags_;
};

}  // namespace

std::unique_ptr<Command> make_generate(CLI::App& parent, const GlobalOptions&) {
  return std::make_unique<GenerateCommand>(parent);
}

}  // namespace lw::cli
