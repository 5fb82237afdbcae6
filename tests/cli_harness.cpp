#include "cli_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "test_util.h"

extern char** environ;

namespace histotrain::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::string file_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> environment_with(const std::map<std::string, std::string>& added) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    if (!added.count(entry.substr(0, entry.find('=')))) env.push_back(entry);
  }
  for (const auto& [key, value] : added) env.push_back(key + "=" + value);
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& words) {
  std::vector<char*> out;
  for (auto& w : words) out.push_back(w.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

nlohmann::json Finished::json() const {
  const nlohmann::json parsed = nlohmann::json::parse(out, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << "stdout is not JSON:\n" << out.substr(0, 2000) << "\nstderr:\n" << err;
  return parsed.is_discarded() ? nlohmann::json() : parsed;
}

Finished run_program(const std::string& program, const Invocation& invocation) {
  ScratchDir io;
  const std::string out = (io / "stdout").string(), err = (io / "stderr").string();
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&files, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), invocation.args.begin(), invocation.args.end());
  std::vector<std::string> env = environment_with(invocation.env);
  if (!invocation.cwd.empty()) posix_spawn_file_actions_addchdir_np(&files, invocation.cwd.c_str());
  Finished result;
  const auto start = Clock::now();
  pid_t pid = 0;
  auto args = pointers(argv);
  auto envp = pointers(env);
  const int spawned = posix_spawnp(&pid, argv[0].c_str(), &files, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&files);
  if (spawned != 0) {
    result.err = "cannot start " + program;
    return result;
  }
  int status = 0;
  rusage usage{};
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(invocation.deadline_s));
  while (true) {
    const pid_t done = ::wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (Clock::now() > deadline && !result.timed_out) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  result.peak_rss_mib = usage.ru_maxrss / 1024;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = file_text(out);
  result.err = file_text(err);
  return result;
}

Finished run_cli(const Invocation& invocation) { return run_program(HISTOTRAIN_EXE, invocation); }

Finished run_cli(const std::vector<std::string>& args, double deadline_s) {
  Invocation invocation;
  invocation.args = args;
  invocation.deadline_s = deadline_s;
  return run_cli(invocation);
}

bool wait_until(const std::function<bool()>& condition, double seconds) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

}  // namespace histotrain::testing
