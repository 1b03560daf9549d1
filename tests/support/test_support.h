// Helpers shared by the test suites: a temporary folder removed at scope exit, paths to the
// built tools and the source tree, and running a command with its output captured.
#pragma once

#include <filesystem>
#include <string>

namespace lw::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::filesystem::path source_dir();
std::filesystem::path binary_dir();
// Path of a built executable, e.g. tool_path("fragment_tool").
std::filesystem::path tool_path(const std::string& name);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
CommandResult run_command(const std::string& command);

}  // namespace lw::test
