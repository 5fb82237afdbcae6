// Progress for long work: a redrawn bar with rate and ETA on a terminal, a few plain lines when
// output goes to a file or a pipe (CI logs, Slurm output): at 10% steps, at most one every 5 s,
// so logs stay readable.
#pragma once
#include <chrono>
#include <mutex>
#include <cstdint>
#include <string>

namespace histotrain {

class Progress {
 public:
  // `unit` names what is counted ("img", "tiles"); `total` may be 0 when unknown.
  // `quiet` silences this one bar (tests, library callers that report on their own).
  Progress(std::string label, int64_t total, std::string unit, bool quiet = false);
  // Reports that `done` items are finished; `extra` is appended (e.g. "loss 0.93").
  void update(int64_t done, const std::string& extra = "");
  // Ends the bar with a final line.
  void finish(const std::string& extra = "");
  double elapsed_s() const;

 private:
  void draw(int64_t done, const std::string& extra, bool final_line);

  std::string label_, unit_;
  int64_t total_;
  int64_t last_done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int next_plain_decile_ = 1;
  bool tty_;
  bool quiet_;
  std::mutex mutex_;  // update() is called from decode threads
};

// "1m23s", "4.2s": short human durations.
std::string format_duration(double seconds);

}  // namespace histotrain
