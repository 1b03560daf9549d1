#include "tools/fragment_tool/progress.h"

#include <unistd.h>

#include <cstdio>

#include "tools/fragment_tool/commands.h"

namespace lw::tool {
namespace {

constexpr auto kTtyInterval = std::chrono::milliseconds(100);
constexpr auto kLineInterval = std::chrono::seconds(5);
constexpr int kBarWidth = 30;

}  // namespace

ProgressBar::ProgressBar(std::string label, bool enabled)
    : label_(std::move(label)),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

ProgressFn ProgressBar::fn() {
  return [this](uint64_t done, uint64_t total) { update(done, total); };
}

void ProgressBar::update(uint64_t done, uint64_t total) {
  done_ = done;
  total_ = total;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration interval = kLineInterval;
  if (tty_) interval = kTtyInterval;
  if (now - last_ < interval && done < total) return;
  if (!tty_ && done >= total) return;  // the command's summary line says it finished
  last_ = now;
  draw();
}

void ProgressBar::finish() {
  if (!enabled_ || !drawn_) return;
  if (tty_) {
    draw();
    std::fputc('\n', stderr);
  }
  drawn_ = false;
  enabled_ = false;
}

void ProgressBar::draw() {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  std::string line = label_ + " ";
  if (tty_) {
    int fill = static_cast<int>(frac * kBarWidth);
    line += "[" + std::string(fill, '#') + std::string(kBarWidth - fill, '-') + "] ";
  }
  char pct[16];
  std::snprintf(pct, sizeof(pct), "%3d%%", static_cast<int>(frac * 100));
  line += std::string(pct) + "  " + format_bytes(static_cast<double>(done_)) + " / " +
          format_bytes(static_cast<double>(total_)) + "  " +
          format_rate(static_cast<double>(done_), seconds);
  if (tty_) {
    std::fprintf(stderr, "\r%-90s", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace lw::tool
