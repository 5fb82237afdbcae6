// Running the histotrain binary (or any program) from a test: arguments as a list (no shell, no
// quoting), environment additions, a working folder and a deadline; what it printed, how it
// ended, and its own accounting of time and peak memory (wait4's rusage, not the test's guess).
// Waiting is for a file or a state (wait_until), never a fixed sleep.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace histotrain::testing {

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

// Polls `condition` every 10 ms until it holds (true) or `seconds` pass (false).
bool wait_until(const std::function<bool()>& condition, double seconds);

}  // namespace histotrain::testing
