// Running the histotrain binary (or any program) from a test: arguments as a list (no shell, no
// quoting), environment additions, a working folder and a deadline; what it printed, how it
// ended, and its own accounting of time and peak memory (wait4's rusage, not the test's guess).
// Waiting is for a file or a state (wait_until), never a fixed sleep.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace histotrain::testing {

class ScratchDir;

struct Invocation {
  std::vector<std::string> args;              // after the program
  std::map<std::string, std::string> env;     // added to the test's environment
  std::filesystem::path cwd;                  // empty: the test's own
  double deadline_s = 600;                    // killed (SIGKILL) past it; timed_out says so
};

struct Finished {
  int exit_code = -1;         // the exit status, or 128 + the signal that ended it
  bool timed_out = false;
  std::string out, err;
  double seconds = 0;         // wall time from start to end
  double cpu_seconds = 0;     // user + system, the child's own
  long peak_rss_mib = 0;      // the child's largest resident set
  nlohmann::json json() const;  // stdout as JSON (a test failure, not a throw, when it is not)
};

// The histotrain binary of this build with `invocation.args`.
Finished run_cli(const Invocation& invocation);
Finished run_cli(const std::vector<std::string>& args, double deadline_s = 600);

// Any program, by path or by name on PATH.
Finished run_program(const std::string& program, const Invocation& invocation);

// A program started and not yet waited for: a test can watch what it prints, signal it, and then
// collect how it ended. Destroying one that was never finished kills it (SIGKILL) and reaps it.
class Running {
 public:
  Running(const std::string& program, const Invocation& invocation);
  Running(Running&&) = delete;
  ~Running();

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  // What it has written to stderr / stdout so far.
  std::string err_so_far() const;
  std::string out_so_far() const;
  // Waits (up to `seconds`) until its stderr contains `text`; false if it never did.
  bool wait_for_err(const std::string& text, double seconds) const;
  void signal(int signal_number) const;
  // Waits for it to end (SIGKILL past the invocation's deadline, counted from the start).
  Finished finish();
  // Seconds since it started.
  double seconds() const;

 private:
  std::unique_ptr<ScratchDir> io_;
  pid_t pid_ = -1;
  double deadline_s_;
  std::chrono::steady_clock::time_point start_;
  std::string start_error_;
};

// The words of a command line built by a test from words without spaces (paths under the test's
// scratch folders, flags, numbers): no quoting, no shell.
std::vector<std::string> words(const std::string& command_line);

// The histotrain binary of this build, started.
std::unique_ptr<Running> start_cli(const Invocation& invocation);

// The children of process `pid` (as /proc lists them), lowest pid first.
std::vector<pid_t> children_of(pid_t pid);

// Whether process `pid` is alive (not yet reaped: a zombie counts as ended).
bool alive(pid_t pid);

// Polls `condition` every 10 ms until it holds (true) or `seconds` pass (false).
bool wait_until(const std::function<bool()>& condition, double seconds);

}  // namespace histotrain::testing
