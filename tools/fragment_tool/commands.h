// fragment_tool's subcommands. Each make_* adds its subcommand (options, help text with
// examples) to the parent CLI::App and returns the object that runs it after parsing.
// run() returns the process exit code; lw::Error escapes to main(), which prints it and maps
// its kind to an exit code (see kExitCodesHelp).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <stdexcept>
#include <string>

namespace lw::tool {

// Exit codes of fragment_tool (also in docs/FRAGMENT_TOOL.md).
constexpr int kExitOk = 0;
constexpr int kExitProblems = 1;   // verify found problems
constexpr int kExitUsage = 2;      // bad command line
constexpr int kExitBadInput = 3;   // bad, corrupt or unsupported input
constexpr int kExitIo = 4;         // the OS refused (open, read, write, rename)
constexpr int kExitInternal = 70;  // a bug

constexpr const char* kExitCodesHelp =
    "Exit codes: 0 success; 1 verify found problems; 2 bad command line; 3 bad, corrupt or\n"
    "unsupported input (LW-GGUF-*, LW-ARCH-*, LW-FRAG-*, ...); 4 I/O error (LW-IO-*);\n"
    "70 internal error. Errors print as \"fragment_tool: error: LW-XXX-NNN: message\".";

// A command-line problem found after CLI11 parsing (e.g. a layer range outside the model).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Options shared by every subcommand.
struct GlobalOptions {
  std::string log_level = "warn";
  bool no_progress = false;
};

class Command {
 public:
  virtual ~Command() = default;
  virtual int run() = 0;
  CLI::App* app = nullptr;
};

std::unique_ptr<Command> make_split(CLI::App& parent, const GlobalOptions& global);
std::unique_ptr<Command> make_verify(CLI::App& parent, const GlobalOptions& global);
std::unique_ptr<Command> make_inspect(CLI::App& parent, const GlobalOptions& global);
std::unique_ptr<Command> make_join(CLI::App& parent, const GlobalOptions& global);
std::unique_ptr<Command> make_synth(CLI::App& parent, const GlobalOptions& global);

// Human sizes and rates in decimal units: "4.07 GB", "812.3 MB/s".
std::string format_bytes(double bytes);
std::string format_rate(double bytes, double seconds);

// Refuses to overwrite an existing file unless force (UsageError-free: LW-FRAG-008, exit 3).
void check_overwrite(const std::string& path, bool force);

}  // namespace lw::tool
