// Small filesystem helpers: whole-file reads, atomic writes, checked output folders.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace histotrain {

namespace fs = std::filesystem;

// Every read of a file histotrain did not just write goes through these: the file must be a
// regular file (a FIFO would block for ever, /dev/zero never ends), checked on the open
// descriptor, and no larger than a limit, checked before a byte is allocated for it.

// The largest text file (a JSON report, a run's configuration) read whole.
constexpr uint64_t kMaxTextFileBytes = uint64_t{64} << 20;

// Reads a whole file of at most `max_bytes`; false when it cannot be opened or read, or is not a
// regular file, or is larger.
bool read_file_bytes(const fs::path& path, std::vector<uint8_t>& out, uint64_t max_bytes = uint64_t{4} << 30);
// A whole text file of at most kMaxTextFileBytes; throws Error when it cannot be read.
std::string read_text_file(const fs::path& path);

// A whole file that comes from someone else: it must be a regular file (not a FIFO or a device
// such as /dev/zero, which never ends) of at most `max_bytes`; throws Error otherwise.
std::string read_regular_file(const fs::path& path, uint64_t max_bytes);

// The 64-bit FNV-1a of a file's bytes, read in chunks (a file of gigabytes costs no more memory
// than a small one); the same rules as read_regular_file.
uint64_t file_fnv1a(const fs::path& path, uint64_t max_bytes);

// Forces a file's (or a folder's: the names in it) data to disk; false on failure.
bool sync_to_disk(const fs::path& path);

// Writes through a temporary file in the same folder and renames it over `path`, so a reader
// (or a run killed half-way) sees either the old file or the new one, never a torn one. A `path`
// that is a symlink, a device, a FIFO or a folder is an Error, never replaced.
void write_file_atomically(const fs::path& path, const std::string& contents);

// Same, for writers that need a path (torch::save): `write` is called with the temporary path.
void replace_file_atomically(const fs::path& path, const std::function<void(const fs::path&)>& write);

// Creates `dir` if needed and checks that a file can be written there; throws Error otherwise.
void ensure_writable_dir(const fs::path& dir);

// A folder histotrain makes inside an output folder (plots/, folds/): created when missing, and
// refused when it is a symbolic link (it would lead the writes elsewhere) or not a folder.
void ensure_own_subfolder(const fs::path& dir);

// Whether `dir` is missing or holds nothing.
bool is_empty_or_missing(const fs::path& dir);

// An exclusive lock on a folder (flock on DIR/.histotrain.lock, released when the object goes or
// the process dies): two processes never write one run folder at once. Throws Error naming the
// holder's process id when another process holds it.
class FolderLock {
 public:
  explicit FolderLock(const fs::path& dir);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

// A list of image names as histotrain writes it (train_images.txt, val_images.txt, cv's folds): a
// CSV with the one column `path`, so that every name, a line break, a carriage return or a
// leading '#' in it included, reads back as itself.
std::string list_file_text(const std::vector<std::string>& names);

// The names of a list file: histotrain's CSV (first line `path`), else one path per line as
// other tools write them, trailing spaces and CRs cut, blank lines and '#' comments skipped;
// throws Error when the file cannot be read, is not a regular file, is over 1 GiB or has a line
// over 64 KiB (no path is that long).
std::vector<std::string> read_list_file(const fs::path& path);

// Appends bytes and flushes them to disk; throws Error (with the system's reason: a full disk, a
// read-only file system) when it cannot, and when `path` is a symbolic link or not a regular file.
void append_bytes(const fs::path& path, const std::string& bytes);
// The same for one line (a newline is added).
void append_line(const fs::path& path, const std::string& line);

// 64-bit FNV-1a, for cache fingerprints.
struct Fnv1a {
  uint64_t value = 1469598103934665603ull;
  void add(const void* data, size_t n);
  void add(const std::string& s) { add(s.data(), s.size() + 1); }  // + NUL keeps "ab","c" != "a","bc"
  void add(uint64_t v) { add(&v, sizeof v); }
};

std::string hex64(uint64_t v);

// A fast 64-bit hash of a large buffer (four independent lanes, several GB/s per core), for
// checksums of tile caches: it finds damaged bytes, it is no defence against a forger.
uint64_t fast_hash(const void* data, size_t n, uint64_t seed = 0);

}  // namespace histotrain
