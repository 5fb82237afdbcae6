#include "util/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "util/csv.h"
#include "util/errors.h"

namespace histotrain {

namespace {

// An open file descriptor of a regular file of at most `max_bytes`, and its size. O_NONBLOCK:
// opening a FIFO must not wait for a writer; fstat on the descriptor (not a stat before the
// open, which a swap could outrun) then refuses it, a device and a folder alike.
class RegularFile {
 public:
  RegularFile(const fs::path& path, uint64_t max_bytes) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) throw Error("cannot read " + path.string() + ": " + std::strerror(errno));
    struct stat info {};
    if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd_);
      throw Error(path.string() + " is not a regular file");
    }
    size_ = static_cast<uint64_t>(info.st_size);
    if (size_ > max_bytes) {
      ::close(fd_);
      throw Error(path.string() + " is too large (" + std::to_string(size_) + " bytes; at most " +
                  std::to_string(max_bytes) + " are read)");
    }
  }
  ~RegularFile() { ::close(fd_); }
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;
  uint64_t size() const { return size_; }
  // Exactly `n` bytes (the file's size is known: fewer means it shrank while read).
  void read_exactly(void* out, size_t n) {
    size_t done = 0;
    while (done < n) {
      const ssize_t got = ::read(fd_, static_cast<char*>(out) + done, n - done);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        throw Error("cannot read " + path_.string() + ": " + (got == 0 ? "it shrank while read" : std::strerror(errno)));
      done += static_cast<size_t>(got);
    }
  }

 private:
  fs::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace

bool read_file_bytes(const fs::path& path, std::vector<uint8_t>& out, uint64_t max_bytes) {
  try {
    RegularFile file(path, max_bytes);
    out.resize(static_cast<size_t>(file.size()));
    file.read_exactly(out.data(), out.size());
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::string read_text_file(const fs::path& path) { return read_regular_file(path, kMaxTextFileBytes); }

std::string read_regular_file(const fs::path& path, uint64_t max_bytes) {
  RegularFile file(path, max_bytes);
  std::string bytes(static_cast<size_t>(file.size()), '\0');
  file.read_exactly(bytes.data(), bytes.size());
  return bytes;
}

uint64_t file_fnv1a(const fs::path& path, uint64_t max_bytes) {
  RegularFile file(path, max_bytes);
  Fnv1a hash;
  std::vector<char> chunk(1 << 20);
  for (uint64_t left = file.size(); left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, chunk.size()));
    file.read_exactly(chunk.data(), n);
    hash.add(chunk.data(), n);
    left -= n;
  }
  return hash.value;
}

bool sync_to_disk(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

static fs::path temporary_sibling(const fs::path& path) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return path.string() + ".tmp" + std::to_string(::getpid()) + "-" + hex64(rng()).substr(0, 6);
}

// A file about to be replaced must be a plain file (or absent): replacing a symlink, a device or a
// FIFO would destroy what the user pointed there, not write to it.
static void check_replaceable(const fs::path& path) {
  std::error_code error;
  const fs::file_status status = fs::symlink_status(path, error);
  if (error || status.type() == fs::file_type::not_found || status.type() == fs::file_type::regular) return;
  const char* what = status.type() == fs::file_type::symlink     ? "a symbolic link"
                     : status.type() == fs::file_type::directory ? "a folder"
                     : status.type() == fs::file_type::fifo      ? "a FIFO"
                                                                 : "a device or socket";
  throw Error(path.string() + " is " + what + ": histotrain writes only regular files and does not replace it");
}

void replace_file_atomically(const fs::path& path, const std::function<void(const fs::path&)>& write) {
  check_replaceable(path);
  const fs::path tmp = temporary_sibling(path);
  try {
    write(tmp);
    if (!sync_to_disk(tmp)) throw Error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_file_atomically(const fs::path& path, const std::string& contents) {
  replace_file_atomically(path, [&](const fs::path& tmp) {
    // A new file of our own: O_EXCL fails on anything already at the name, a link included.
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    std::FILE* f = fd >= 0 ? ::fdopen(fd, "wb") : nullptr;
    if (!f) {
      const int error = errno;
      if (fd >= 0) ::close(fd);
      throw Error("cannot create " + tmp.string() + ": " + std::strerror(error));
    }
    const bool written = std::fwrite(contents.data(), 1, contents.size(), f) == contents.size() && std::fflush(f) == 0;
    const int error = errno;
    if (std::fclose(f) != 0 || !written) throw Error("cannot write " + path.string() + ": " + std::strerror(written ? errno : error));
  });
}

void ensure_writable_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec && !fs::is_directory(dir)) throw Error("cannot create folder " + dir.string() + ": " + ec.message());
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error("output folder " + dir.string() + " is not writable");
}

void ensure_own_subfolder(const fs::path& dir) {
  std::error_code error;
  const fs::file_status status = fs::symlink_status(dir, error);
  if (status.type() == fs::file_type::symlink)
    throw Error(dir.string() + " is a symbolic link: histotrain writes only into folders of its own there");
  if (status.type() != fs::file_type::not_found && status.type() != fs::file_type::directory)
    throw Error(dir.string() + " is not a folder");
  ensure_writable_dir(dir);
}

bool is_empty_or_missing(const fs::path& dir) {
  std::error_code error;
  if (!fs::exists(dir, error)) return true;
  return fs::is_directory(dir, error) && fs::directory_iterator(dir, error) == fs::directory_iterator();
}

FolderLock::FolderLock(const fs::path& dir) {
  const fs::path path = dir / ".histotrain.lock";
  // Read-only: an fd open for writing for the run's whole life would keep the file system from
  // being remounted read-only under it (and flock needs no write access).
  fd_ = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) throw Error("cannot lock " + dir.string() + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string pid = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "";
    pid.erase(std::remove_if(pid.begin(), pid.end(), [](char c) { return c < '0' || c > '9'; }), pid.end());
    throw Error("'" + dir.string() + "' is being written by another histotrain process" +
                (pid.empty() ? "" : " (pid " + pid + ")") + "; wait for it to end or choose another folder");
  }
  // Who holds it, for the message another process gives; the lock holds without it too.
  const int note = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
  if (note >= 0) {
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::write(note, pid.data(), pid.size()) < 0) {
      // a full disk: the message goes without the pid
    }
    ::close(note);
  }
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays, harmless
}

std::string list_file_text(const std::vector<std::string>& names) {
  std::string text = "path\n";
  for (const auto& name : names) text += csv_field(name) + "\n";
  return text;
}

namespace {

// A list file histotrain wrote: a CSV with the one column `path`, every name exactly as it is.
std::vector<std::string> names_of_csv_list(const std::string& text, const fs::path& path) {
  std::vector<std::string> names;
  const std::vector<CsvRecord> records = parse_csv(text, "list file '" + path.string() + "'");
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].fields.size() != 1)
      throw Error("list file '" + path.string() + "', line " + std::to_string(records[r].line) +
                  ": one path per row expected");
    names.push_back(records[r].fields[0]);
  }
  return names;
}

}  // namespace

std::vector<std::string> read_list_file(const fs::path& path) {
  constexpr size_t kMaxLine = 64 << 10;
  std::string text;
  try {
    text = read_regular_file(path, uint64_t{1} << 30);
  } catch (const Error& e) {
    throw Error("cannot read list file '" + path.string() + "' (" + e.what() + ")");
  }
  if (text.rfind("path\n", 0) == 0 || text.rfind("path\r\n", 0) == 0) return names_of_csv_list(text, path);
  std::vector<std::string> lines;
  size_t number = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++number;
    if (end - start > kMaxLine)
      throw Error("list file '" + path.string() + "', line " + std::to_string(number) + ": longer than " +
                  std::to_string(kMaxLine) + " bytes; is it a list of paths?");
    std::string line = text.substr(start, end - start);
    start = end + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  }
  return lines;
}

void append_bytes(const fs::path& path, const std::string& bytes) {
  // Never through a link, never to a FIFO or device: the file must be a regular file (a link
  // placed where a run's log goes must not make the run write elsewhere).
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error("cannot append to " + path.string() + ": " +
                (errno == ELOOP ? std::string("it is a symbolic link") : std::strerror(errno)));
  struct stat before {};
  if (::fstat(fd, &before) != 0 || !S_ISREG(before.st_mode)) {
    ::close(fd);
    throw Error("cannot append to " + path.string() + ": not a regular file");
  }
  const bool written = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) && ::fsync(fd) == 0;
  const int error = errno;
  if (!written) (void)::ftruncate(fd, before.st_size);  // nothing half-written is left behind
  ::close(fd);
  if (!written) throw Error("cannot append to " + path.string() + ": " + std::strerror(error));
}

void append_line(const fs::path& path, const std::string& line) { append_bytes(path, line + "\n"); }

void Fnv1a::add(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    value ^= p[i];
    value *= 1099511628211ull;
  }
}

namespace {
constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ull, kPrime2 = 0xC2B2AE3D27D4EB4Full, kPrime3 = 0x165667B19E3779F9ull;
uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
uint64_t mix_lane(uint64_t lane, uint64_t word) { return rotl(lane + word * kPrime2, 31) * kPrime1; }
}  // namespace

uint64_t fast_hash(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t lanes[4] = {seed + kPrime1 + kPrime2, seed + kPrime2, seed, seed - kPrime1};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 4; ++l) {
      uint64_t word;
      std::memcpy(&word, p + i + 8 * l, 8);
      lanes[l] = mix_lane(lanes[l], word);
    }
  uint64_t h = rotl(lanes[0], 1) + rotl(lanes[1], 7) + rotl(lanes[2], 12) + rotl(lanes[3], 18) + n;
  for (; i < n; ++i) h = rotl(h ^ (p[i] * kPrime3), 11) * kPrime1;
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace histotrain
