#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace histotrain {

namespace {
constexpr auto kPlainLineInterval = std::chrono::seconds(5);
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool quiet)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_),
      tty_(::isatty(STDERR_FILENO) != 0),
      quiet_(quiet) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) / 60) % 60);
  }
  return buf;
}

void Progress::update(int64_t done, const std::string& extra) {
  std::lock_guard<std::mutex> lock(mutex_);
  last_done_ = std::max(last_done_, done);
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    draw(done, extra, false);
  } else if (now - last_draw_ >= kPlainLineInterval && done < total_ && done * 10 >= total_ * next_plain_decile_) {
    // Without a terminal (a pipe, a log file, Slurm's output): a line at a new 10% step, and
    // at most one every few seconds, so that logs show the work going on without one line per update.
    while (done * 10 >= total_ * next_plain_decile_) ++next_plain_decile_;
    last_draw_ = now;
    draw(done, extra, true);
  } else if (total_ <= 0 && now - last_draw_ >= kPlainLineInterval) {
    last_draw_ = now;
    draw(done, extra, true);
  }
}

void Progress::finish(const std::string& extra) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (quiet_) return;
  draw(total_ > 0 ? total_ : last_done_, extra, true);
}

void Progress::draw(int64_t done, const std::string& extra, bool final_line) {
  const double elapsed = elapsed_s();
  const double rate = elapsed > 0 ? done / elapsed : 0;
  std::string bar;
  if (tty_ && total_ > 0) {
    const int width = 24;
    const int filled = static_cast<int>(width * std::min<double>(1.0, static_cast<double>(done) / total_));
    bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
  }
  char line[256];
  if (total_ > 0) {
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    std::snprintf(line, sizeof line, "%s %s%lld/%lld %s, %.1f %s/s, %s, ETA %s", label_.c_str(), bar.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(),
                  format_duration(elapsed).c_str(), format_duration(eta).c_str());
  } else {
    std::snprintf(line, sizeof line, "%s %lld %s, %.1f %s/s, %s", label_.c_str(), static_cast<long long>(done),
                  unit_.c_str(), rate, unit_.c_str(), format_duration(elapsed).c_str());
  }
  std::string text = line;
  if (!extra.empty()) text += ", " + extra;
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", text.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

}  // namespace histotrain
