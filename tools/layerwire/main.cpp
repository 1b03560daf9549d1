// layerwire: the user-facing tool of the layer engine. Subcommands: eval (whole model in one
// process, logits of every position), bench (prefill / decode speed and memory bandwidth).
// Later issues add generate, chat and status as further subcommand files.
#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <memory>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "tools/layerwire/commands.h"

namespace lw::cli {

void add_backend_options(CLI::App& app, BackendOptions& options) {
  app.add_option("--backend", options.name, "compute backend: cpu, or cuda when built with it")
      ->capture_default_str();
  app.add_option("--device", options.device, "device index for the cuda backend")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--threads", options.threads, "CPU threads for the cpu backend (0 = one per core)")
      ->capture_default_str();
}

std::vector<int32_t> parse_token_list(const std::string& text, const std::string& flag) {
  std::vector<int32_t> tokens;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    size_t b = pos, e = comma;
    while (b < e && text[b] == ' ') ++b;
    while (e > b && text[e - 1] == ' ') --e;
    int32_t value = -1;
    const auto [ptr, ec] = std::from_chars(text.data() + b, text.data() + e, value);
    if (b == e || ec != std::errc() || ptr != text.data() + e || value < 0) {
      throw Error(ErrorCode::kCliArgument,
                  flag + ": item " + std::to_string(tokens.size()) + " (\"" +
                      text.substr(b, e - b) +
                      "\") is not a token id (a non-negative integer below 2^31)");
    }
    tokens.push_back(value);
    pos = comma + 1;
  }
  return tokens;
}

void add_exit_codes_footer(CLI::App& app) {
  std::string own = app.get_footer();
  // A subcommand created after the parent's footer was set inherits it: that is not its own.
  if (app.get_parent() != nullptr && own == app.get_parent()->get_footer()) own.clear();
  app.footer(own.empty() ? std::string(kExitCodesHelp) : own + "\n\n" + kExitCodesHelp);
}

namespace {

int exit_code_for(const Error& e) {
  if (e.code() == ErrorCode::kCliArgument) return kExitUsage;
  switch (e.kind()) {
    case ErrorKind::BadInput:
    case ErrorKind::Corrupt:
    case ErrorKind::NotFound:
    case ErrorKind::Unsupported:
      return kExitBadInput;
    case ErrorKind::Io:
      return kExitIo;
    case ErrorKind::Overloaded:
    case ErrorKind::Internal:
      return kExitInternal;
  }
  return kExitInternal;
}

int run(int argc, char** argv) {
  CLI::App app(
      "layerwire: run a llama-family model stored as a layerwire fragment store (see "
      "fragment_tool). eval runs the whole model in one process and writes the logits of "
      "every position; bench measures prefill / decode speed of the layer engine against "
      "this machine's memory bandwidth.",
      "layerwire");
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(std::string("Examples:\n"
                         "  fragment_tool synth --preset tiny -o tiny.gguf\n"
                         "  fragment_tool split tiny.gguf -o tiny.store\n"
                         "  layerwire eval --fragments tiny.store --tokens 1,15,27 --out "
                         "logits.f32\n"
                         "  layerwire bench --fragments tiny.store -p 512 -n 128\n"
                         "Run \"layerwire COMMAND --help\" for each command's options.\n\n") +
             kExitCodesHelp);
  GlobalOptions global;
  app.add_option("--log-level", global.log_level, "log level of the library loggers")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();

  std::vector<std::unique_ptr<Command>> commands;
  commands.push_back(make_eval(app, global));
  commands.push_back(make_bench(app, global));
  commands.push_back(make_tokenize(app, global));
  commands.push_back(make_detokenize(app, global));
  commands.push_back(make_generate(app, global));
  commands.push_back(make_chat(app, global));
  commands.push_back(make_status(app, global));
  for (auto& c : commands) add_exit_codes_footer(*c->app);

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
}  // namespace lw::cli

int main(int argc, char** argv) {
  try {
    return lw::cli::run(argc, argv);
  } catch (const lw::Error& e) {
    std::fprintf(stderr, "layerwire: error: %s\n", e.what());
    return lw::cli::exit_code_for(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "layerwire: internal error: %s\n", e.what());
    return lw::cli::kExitInternal;
  }
}
