// A progress display on stderr for long operations: on a terminal one line redrawn with '\r'
// (bar, percent, bytes, MB/s); otherwise a plain line every few seconds, so logs stay short.
// update() may be called from several threads only if the caller serializes (the store's
// ProgressFn contract does).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "fragments/store.h"

namespace lw::tool {

class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled);
  ~ProgressBar();
  void update(uint64_t done, uint64_t total);
  // Draws the final state and ends the line (terminal) once; safe to call twice.
  void finish();
  ProgressFn fn();

 private:
  void draw();
  std::string label_;
  bool enabled_;
  bool tty_;
  bool drawn_ = false;
  uint64_t done_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace lw::tool
