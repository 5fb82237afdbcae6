#include "util/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include "util/errors.h"

extern char** environ;

namespace histotrain {

namespace {

// posix_spawn's file actions, released whatever happens.
struct FileActions {
  posix_spawn_file_actions_t actions;
  FileActions() { posix_spawn_file_actions_init(&actions); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions); }
};

}  // namespace

pid_t start_process(const std::vector<std::string>& argv, const ChildOutput& output) {
  if (argv.empty()) throw Error("start_process: no program");
  FileActions files;
  // No O_CLOEXEC: posix_spawn closes the target descriptor first, so the file opens as that very
  // descriptor, and the flag would close it at exec.
  const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW;  // a log is never written through a link
  if (!output.stdout_file.empty()) {
    posix_spawn_file_actions_addopen(&files.actions, STDOUT_FILENO, output.stdout_file.c_str(), flags, 0644);
    if (output.stderr_file.empty()) posix_spawn_file_actions_adddup2(&files.actions, STDOUT_FILENO, STDERR_FILENO);
  }
  if (!output.stderr_file.empty())
    posix_spawn_file_actions_addopen(&files.actions, STDERR_FILENO, output.stderr_file.c_str(), flags, 0644);
  if (!output.cwd.empty()) posix_spawn_file_actions_addchdir_np(&files.actions, output.cwd.c_str());
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int error = posix_spawnp(&pid, args[0], &files.actions, nullptr, args.data(), environ);
  if (error != 0) throw Error("cannot start " + argv[0] + ": " + std::strerror(error));
  return pid;
}

int wait_process(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw Error(std::string("waiting for a child process: ") + std::strerror(errno));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_process(const std::vector<std::string>& argv, const std::filesystem::path& log, const std::filesystem::path& cwd) {
  return wait_process(start_process(argv, {log, {}, cwd}));
}

}  // namespace histotrain
