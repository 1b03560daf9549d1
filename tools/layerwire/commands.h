// layerwire's subcommands. Each make_* adds its subcommand (options, help text with
// examples) to the parent CLI::App and returns the object that runs it after parsing; a new
// subcommand is one more file and one more line in main.cpp. run() returns the exit code;
// lw::Error escapes to main(), which prints it and maps its kind to an exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "client/remote_executor.h"

namespace lw::cli {

// Exit codes (as fragment_tool's).
constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;      // bad command line (LW-CLI-001 included)
constexpr int kExitBadInput = 3;   // bad, corrupt or unsupported input
constexpr int kExitIo = 4;         // the OS refused (open, read, write)
constexpr int kExitInternal = 70;  // a bug, or an unexpected condition

constexpr const char* kExitCodesHelp =
    "Exit codes: 0 success; 2 bad command line (LW-CLI-001); 3 bad, corrupt or unsupported\n"
    "input (LW-FRAG-*, LW-ARCH-*, LW-ENG-*, LW-BACKEND-001, ...); 4 I/O error (LW-IO-*);\n"
    "70 internal error. Errors print as \"layerwire: error: LW-XXX-NNN: message\".";

// Options shared by every subcommand.
struct GlobalOptions {
  std::string log_level = "warn";
};

class Command {
 public:
  virtual ~Command() = default;
  virtual int run() = 0;
  CLI::App* app = nullptr;
};

std::unique_ptr<Command> make_eval(CLI::App& parent, const GlobalOptions& global);
std::unique_ptr<Command> make_bench(CLI::App& parent, const GlobalOptions& global);
// The model's tokenizer on text / ids (tokenize_command.cpp).
std::unique_ptr<Command> make_tokenize(CLI::App& parent, const GlobalOptions& global);
std::unique_ptr<Command> make_detokenize(CLI::App& parent, const GlobalOptions& global);
// Cluster commands (client engineer): generate_command.cpp, chat_command.cpp,
// status_command.cpp; `bench --config` runs run_cluster_bench (cluster_bench_command.cpp).
std::unique_ptr<Command> make_generate(CLI::App& parent, const GlobalOptions& global);
std::unique_ptr<Command> make_chat(CLI::App& parent, const GlobalOptions& global);
std::unique_ptr<Command> make_status(CLI::App& parent, const GlobalOptions& global);
struct ClusterBenchOptions {
  std::string config;  // client config file
  int prompt = 512;    // pp size (0 skips)
  int gen = 128;       // tg size (0 skips)
  int reps = 3;
  bool json = false;
};
int run_cluster_bench(const ClusterBenchOptions& options);

// Adds --backend, --device and --threads to a subcommand.
struct BackendOptions {
  std::string name = "cpu";
  int device = 0;
  unsigned threads = 0;
};
void add_backend_options(CLI::App& app, BackendOptions& options);

// Parses "1,15,27" (spaces allowed around commas) into token ids; LW-CLI-001 naming the flag
// and the offending item for anything but non-negative integers below 2^31.
std::vector<int32_t> parse_token_list(const std::string& text, const std::string& flag = "--tokens");

// Appends the exit-code text to a subcommand's own footer (its examples), keeping both.
void add_exit_codes_footer(CLI::App& app);

// Sampling and generation flags shared by generate and chat (generate_command.cpp).
struct SamplingFlags {
  SamplingParams sampling;
  GenerateOptions options;
  bool greedy = false;
  bool ignore_eos = false;
  // Applies --greedy / --ignore-eos and checks the values (LW-TOK-005).
  void finish();
};
void add_sampling_options(CLI::App& app, SamplingFlags& flags);
// Generated text for a terminal: control bytes other than newline and tab become "\xNN"
// (random models emit them).
std::string terminal_text(const std::string& text);
// The timings and per-server table after a generation, and the same as JSON text.
void print_generation_report(const GenerateResult& result, FILE* out);
std::string generation_json(const GenerateResult& result);

}  // namespace lw::cli
