// Named spdlog loggers. Library code asks for its logger by name ("fragments", "engine",
// "server", ...); only main() configures sinks and levels (log_setup). Log lines carry the
// session / request / fragment id they concern.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace lw {

// Returns the logger with this name, creating it (stderr sink, shared level) if needed.
std::shared_ptr<spdlog::logger> logger(const std::string& name);

// Called once by main(): level is one of trace, debug, info, warn, error, off.
void log_setup(const std::string& level);

}  // namespace lw
