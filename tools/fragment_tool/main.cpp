// fragment_tool: split a GGUF model into a checksummed fragment store, verify, inspect and
// join it, and synthesize test models. See docs/FRAGMENT_TOOL.md.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "tools/fragment_tool/commands.h"

namespace lw::tool {

std::string format_bytes(double bytes) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) {
    bytes /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", bytes, kUnits[u]);
  return buf;
}

std::string format_rate(double bytes, double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MB/s", seconds > 0 ? bytes / seconds / 1e6 : 0.0);
  return buf;
}

void check_overwrite(const std::string& path, bool force) {
  std::error_code ec;
  if (!force && std::filesystem::exists(std::filesystem::symlink_status(path, ec))) {
    throw Error(ErrorCode::kFragDirNotEmpty, path + ": exists (use --force to replace it)");
  }
}

namespace {

int exit_code_for(const Error& e) {
  if (e.code() == ErrorCode::kCliArgument) return kExitUsage;
  switch (e.kind()) {
    case ErrorKind::BadInput:
    case ErrorKind::Corrupt:
    case ErrorKind::NotFound:
    case ErrorKind::Unsupported: return kExitBadInput;
    case ErrorKind::Io: return kExitIo;
    case ErrorKind::Overloaded:
    case ErrorKind::Internal: return kExitInternal;
  }
  return kExitInternal;
}

int run(int argc, char** argv) {
  CLI::App app("fragment_tool: split a GGUF model into checksummed fragment files (one per "
               "layer, plus embedding and output) described by manifest.json; verify, inspect "
               "and join them back byte for byte; synthesize test models.",
               "fragment_tool");
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(std::string("Examples:\n"
                         "  fragment_tool synth --preset tiny -o tiny.gguf\n"
                         "  fragment_tool split tiny.gguf -o tiny.store\n"
                         "  fragment_tool verify tiny.store --jobs 2\n"
                         "  fragment_tool inspect tiny.store --json\n"
                         "  fragment_tool join tiny.store -o tiny.joined.gguf\n"
                         "Run \"fragment_tool COMMAND --help\" for each command's options.\n\n") +
             kExitCodesHelp);
  GlobalOptions global;
  app.add_option("--log-level", global.log_level, "log level of the library loggers")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_flag("--no-progress", global.no_progress, "never draw progress on stderr");

  std::vector<std::unique_ptr<Command>> commands;
  commands.push_back(make_split(app, global));
  commands.push_back(make_verify(app, global));
  commands.push_back(make_inspect(app, global));
  commands.push_back(make_join(app, global));
  commands.push_back(make_synth(app, global));
  for (auto& c : commands) {
    std::string own = c->app->get_footer();  // the command's examples, if any
    if (own == app.get_footer()) own.clear();  // inherited from the parent, not its own
    c->app->footer(own.empty() ? std::string(kExitCodesHelp) : own + "\n\n" + kExitCodesHelp);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  log_setup(global.log_level);
  for (auto& c : commands) {
    if (c->app->parsed()) return c->run();
  }
  return kExitUsage;
}

}  // namespace
}  // namespace lw::tool

int main(int argc, char** argv) {
  try {
    return lw::tool::run(argc, argv);
  } catch (const lw::tool::UsageError& e) {
    std::fprintf(stderr, "fragment_tool: error: %s\n", e.what());
    return lw::tool::kExitUsage;
  } catch (const lw::Error& e) {
    std::fprintf(stderr, "fragment_tool: error: %s\n", e.what());
    return lw::tool::exit_code_for(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fragment_tool: internal error: %s\n", e.what());
    return lw::tool::kExitInternal;
  }
}
