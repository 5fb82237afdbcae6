// Child processes started from an argument vector, never through a shell: no word of any argument
// (a path, a name from someone's plan file) can become a command.
#pragma once
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace histotrain {

struct ChildOutput {
  std::filesystem::path stdout_file;  // created or truncated; empty: inherited
  std::filesystem::path stderr_file;  // empty: the same file as stdout (or inherited with it)
  std::filesystem::path cwd;          // empty: this process's
};

// Starts argv[0] (looked up in PATH when it has no '/') with `argv`; throws Error when it cannot.
pid_t start_process(const std::vector<std::string>& argv, const ChildOutput& output = {});

// Waits for a started process: its exit code, or 128 + the signal that ended it.
int wait_process(pid_t pid);

// Both: runs argv to its end with stdout and stderr in `log`.
int run_process(const std::vector<std::string>& argv, const std::filesystem::path& log,
                const std::filesystem::path& cwd = {});

}  // namespace histotrain
