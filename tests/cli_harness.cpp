#include "cli_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

Running::Running(const std::string& program, const Invocation& invocation)
    : io_(std::make_unique<ScratchDir>()), deadline_s_(invocation.deadline_s), start_(Clock::now()) {
  const std::string out = (*io_ / "stdout").string(), err = (*io_ / "stderr").string();
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&files, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), invocation.args.begin(), invocation.args.end());
  std::vector<std::string> env = environment_with(invocation.env);
  if (!invocation.cwd.empty()) posix_spawn_file_actions_addchdir_np(&files, invocation.cwd.c_str());
  auto args = pointers(argv);
  auto envp = pointers(env);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0].c_str(), &files, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&files);
  if (spawned == 0)
    pid_ = pid;
  else
    start_error_ = "cannot start " + program;
}

Running::~Running() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

std::string Running::err_so_far() const { return file_text(*io_ / "stderr"); }
std::string Running::out_so_far() const { return file_text(*io_ / "stdout"); }

bool Running::wait_for_err(const std::string& text, double seconds) const {
  return wait_until([&] { return err_so_far().find(text) != std::string::npos; }, seconds);
}

void Running::signal(int signal_number) const {
  if (pid_ > 0) ::kill(pid_, signal_number);
}

double Running::seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

Finished Running::finish() {
  Finished result;
  if (pid_ <= 0) {
    result.err = start_error_;
    return result;
  }
  int status = 0;
  rusage usage{};
  const auto deadline = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(deadline_s_));
  while (true) {
    const pid_t done = ::wait4(pid_, &status, WNOHANG, &usage);
    if (done == pid_) break;
    if (Clock::now() > deadline && !result.timed_out) {
      result.timed_out = true;
      ::kill(pid_, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  result.seconds = seconds();
  result.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  result.peak_rss_mib = usage.ru_maxrss / 1024;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = out_so_far();
  result.err = err_so_far();
  return result;
}

Finished run_program(const std::string& program, const Invocation& invocation) {
  return Running(program, invocation).finish();
}

std::vector<std::string> words(const std::string& command_line) {
  std::istringstream in(command_line);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
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

std::unique_ptr<Running> start_cli(const Invocation& invocation) {
  return std::make_unique<Running>(HISTOTRAIN_EXE, invocation);
}

namespace {

// /proc/PID/stat's state and parent, read after the name's closing parenthesis (a name may hold
// spaces); false when the process is gone.
bool process_state(pid_t pid, char& state, pid_t& parent) {
  const std::string stat = file_text("/proc/" + std::to_string(pid) + "/stat");
  const size_t name_end = stat.rfind(')');
  if (name_end == std::string::npos) return false;
  std::istringstream rest(stat.substr(name_end + 1));
  return static_cast<bool>(rest >> state >> parent);
}

}  // namespace

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> children;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    char state = 0;
    pid_t parent = 0;
    const pid_t child = static_cast<pid_t>(std::stol(name));
    if (process_state(child, state, parent) && parent == pid) children.push_back(child);
  }
  std::sort(children.begin(), children.end());
  return children;
}

bool alive(pid_t pid) {
  char state = 0;
  pid_t parent = 0;
  return process_state(pid, state, parent) && state != 'Z' && state != 'X';  // Z: ended, not yet reaped
}

}  // namespace histotrain::testing
