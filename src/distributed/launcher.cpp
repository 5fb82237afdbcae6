#include "distributed/launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "util/errors.h"

namespace histotrain {

namespace {

volatile sig_atomic_t g_signal_to_forward = 0;
void remember_signal(int signal) { g_signal_to_forward = signal; }

struct Stream {
  int fd = -1;
  int rank = 0;
  FILE* sink = nullptr;
  std::string pending;  // a line not yet ended
};

struct Rank {
  pid_t pid = -1;
  bool running = true;
  int exit_code = 0;  // exit status, or 128 + signal
  std::string ended;  // how it ended, in words
};

void print_prefixed(Stream& s, const char* data, size_t n) {
  s.pending.append(data, n);
  size_t start = 0;
  for (size_t end; (end = s.pending.find('\n', start)) != std::string::npos; start = end + 1)
    std::fprintf(s.sink, "[rank %d] %.*s\n", s.rank, static_cast<int>(end - start), s.pending.data() + start);
  s.pending.erase(0, start);
  std::fflush(s.sink);
}

// Progress bars redraw with '\r': print each redraw as its own line only when the rank ends a line.
void flush_rest(Stream& s) {
  if (!s.pending.empty()) print_prefixed(s, "\n", 1);
}

// The ranks meet through a c10d FileStore in a folder of their own (mode 0700), not a TCP port:
// nothing of the job listens on the network, and no other user can read or write its keys.
// Removed when the launch ends.
class PrivateFolder {
 public:
  PrivateFolder() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/histotrain-launch-XXXXXX";
    if (!::mkdtemp(pattern.data()))
      throw Error("cannot create a private folder for the ranks' rendezvous in " + pattern + ": " + std::strerror(errno));
    path_ = pattern;
  }
  ~PrivateFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

pid_t start_rank(const LaunchOptions& o, int rank, int port, const std::string& store_file, int threads, int out_fd,
                 int err_fd) {
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("cannot start a rank: fork failed: ") + std::strerror(errno));
  if (pid > 0) return pid;
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(err_fd, STDERR_FILENO);
  ::setenv("RANK", std::to_string(rank).c_str(), 1);
  ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  ::setenv("WORLD_SIZE", std::to_string(o.ranks).c_str(), 1);
  ::setenv("LOCAL_WORLD_SIZE", std::to_string(o.ranks).c_str(), 1);
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  ::setenv("HISTOTRAIN_STORE_FILE", store_file.c_str(), 1);
  ::setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> words = {exe};
  words.insert(words.end(), o.args.begin(), o.args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  ::execv(exe.c_str(), argv.data());
  std::fprintf(stderr, "cannot run %s: %s\n", exe.c_str(), std::strerror(errno));
  ::_exit(127);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string how_it_ended(int status) {
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  const int code = exit_code_of(status);
  if (code == 128 + SIGINT || code == 128 + SIGTERM)
    return "stopped for " + std::string(strsignal(code - 128)) + " (exit code " + std::to_string(code) + ")";
  return "exited with code " + std::to_string(code);
}

void signal_all(std::vector<Rank>& ranks, int signal) {
  for (auto& r : ranks)
    if (r.running) ::kill(r.pid, signal);
}

}  // namespace

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("cannot open a socket to find a free port");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  if (!ok) throw Error("cannot find a free port on 127.0.0.1");
  return ntohs(address.sin_port);
}

namespace {

// The ranks of one launch and their output, watched until every rank has ended and every stream
// is drained.
struct Launch {
  explicit Launch(const LaunchOptions& o) : options(o) {}
  const LaunchOptions& options;
  std::vector<Rank> ranks;
  std::vector<Stream> streams;
  size_t open_streams = 0, running = 0;
  int result = 0, failed_rank = -1;
  bool forwarded_signal = false;
  std::chrono::steady_clock::time_point kill_at{};  // when SIGKILL follows; {}: none pending

  void kill_after_grace() {
    kill_at = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                     std::chrono::duration<double>(options.grace_seconds));
  }
};

void start_ranks(Launch& l, int port, const std::string& store_file, int threads) {
  l.ranks.resize(static_cast<size_t>(l.options.ranks));
  for (int r = 0; r < l.options.ranks; ++r) {
    if (g_signal_to_forward) {  // stopped while starting: the ranks started so far get the signal
      l.ranks.resize(static_cast<size_t>(r));
      break;
    }
    int out[2], err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0) throw Error("cannot create pipes for the ranks' output");
    l.ranks[r].pid = start_rank(l.options, r, port, store_file, threads, out[1], err[1]);
    ::close(out[1]);
    ::close(err[1]);
    l.streams.push_back({out[0], r, stdout, {}});
    l.streams.push_back({err[0], r, stderr, {}});
  }
  l.open_streams = l.streams.size();
  l.running = l.ranks.size();
}

// Ctrl-C or SIGTERM to the launcher goes to every rank, which stop with a checkpoint; the grace
// period's end stops them for good.
void forward_pending_signal(Launch& l) {
  if (!g_signal_to_forward) return;
  std::fprintf(stderr, "histotrain launch: passing signal %d to every rank\n", static_cast<int>(g_signal_to_forward));
  signal_all(l.ranks, g_signal_to_forward);
  l.forwarded_signal = true;
  g_signal_to_forward = 0;
  if (l.kill_at == std::chrono::steady_clock::time_point{}) l.kill_after_grace();
}

// Copies what the ranks wrote, line by line with their rank, waiting up to 100 ms for some.
void copy_output(Launch& l) {
  std::vector<pollfd> fds;
  std::vector<Stream*> owners;
  for (auto& s : l.streams)
    if (s.fd >= 0) {
      fds.push_back({s.fd, POLLIN, 0});
      owners.push_back(&s);
    }
  if (fds.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return;
  }
  if (::poll(fds.data(), fds.size(), 100) <= 0) return;
  for (size_t i = 0; i < fds.size(); ++i) {
    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    char buffer[4096];
    const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
    if (n > 0) {
      print_prefixed(*owners[i], buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      flush_rest(*owners[i]);
      ::close(owners[i]->fd);
      owners[i]->fd = -1;
      --l.open_streams;
    }
  }
}

// Notes the ranks that ended. The first that failed on its own stops the others.
void reap_ranks(Launch& l) {
  for (size_t r = 0; r < l.ranks.size(); ++r) {
    Rank& rank = l.ranks[r];
    int status = 0;
    if (!rank.running || ::waitpid(rank.pid, &status, WNOHANG) != rank.pid) continue;
    rank.running = false;
    rank.exit_code = exit_code_of(status);
    rank.ended = how_it_ended(status);
    --l.running;
    if (rank.exit_code == 0 || l.failed_rank >= 0) continue;
    l.failed_rank = static_cast<int>(r);
    l.result = rank.exit_code;
    // After a forwarded signal every rank is on its way out (writing a checkpoint, perhaps):
    // only the grace period's end stops them.
    if (l.forwarded_signal) continue;
    std::fprintf(stderr, "histotrain launch: rank %zu %s; stopping the other ranks\n", r, rank.ended.c_str());
    signal_all(l.ranks, SIGTERM);
    l.kill_after_grace();
  }
}

void kill_after_grace_period(Launch& l) {
  if (l.running == 0 || l.kill_at == std::chrono::steady_clock::time_point{}) return;
  if (std::chrono::steady_clock::now() <= l.kill_at) return;
  signal_all(l.ranks, SIGKILL);
  l.kill_at = {};
}

}  // namespace

void check_launch_options(const LaunchOptions& o, int cores) {
  // More ranks than 8 per core only thrash; -n 100000 would start processes for minutes.
  if (o.ranks < 1 || o.ranks > 8 * cores)
    throw UsageError("-n must be from 1 to " + std::to_string(8 * cores) + " (8 ranks per core of this machine)");
  if (o.threads_per_rank < 0 || o.threads_per_rank > 4 * cores)
    throw UsageError("--threads-per-rank must be from 0 (cores / N) to " + std::to_string(4 * cores));
  if (o.port < 0 || o.port > 65535) throw UsageError("--port must be from 0 (a free one) to 65535");
  if (!(o.grace_seconds >= 0 && o.grace_seconds <= 3600))
    throw UsageError("--grace must be a number of seconds from 0 to 3600");
  if (o.args.empty()) throw UsageError("name the command each rank runs after --, e.g. -- train --data DIR");
}

int launch_local_ranks(const LaunchOptions& o) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  check_launch_options(o, cores);
  const int port = o.port > 0 ? o.port : free_loopback_port();
  const int threads = o.threads_per_rank > 0 ? o.threads_per_rank : std::max(1, cores / o.ranks);
  const PrivateFolder rendezvous;
  const std::string store_file = (rendezvous.path() / "store").string();
  std::fprintf(stderr, "histotrain launch: %d rank(s) on this host, meeting through %s (no open port), %d thread(s) each\n",
               o.ranks, store_file.c_str(), threads);

  struct sigaction action {};
  action.sa_handler = remember_signal;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  Launch launch(o);
  start_ranks(launch, port, store_file, threads);
  while (launch.running > 0 || launch.open_streams > 0) {
    forward_pending_signal(launch);
    copy_output(launch);
    reap_ranks(launch);
    kill_after_grace_period(launch);
  }
  if (launch.failed_rank < 0)
    for (const auto& r : launch.ranks)
      if (r.exit_code != 0) return r.exit_code;
  return launch.result;
}

}  // namespace histotrain
