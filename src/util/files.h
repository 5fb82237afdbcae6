// Small filesystem helpers: whole-file reads, atomic writes, checked output folders.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace histotrain {

namespace fs = std::filesystem;

// Reads a whole file; false when it cannot be opened or read.
bool read_file_bytes(const fs::path& path, std::vector<uint8_t>& out);

// Writes through a temporary file in the same folder and renames it over `path`, so a reader
// (or a run killed half-way) sees either the old file or the new one, never a torn one.
void write_file_atomically(const fs::path& path, const std::string& contents);

// Same, for writers that need a path (torch::save): `write` is called with the temporary path.
void replace_file_atomically(const fs::path& path, const std::function<void(const fs::path&)>& write);

// Creates `dir` if needed and checks that a file can be written there; throws Error otherwise.
void ensure_writable_dir(const fs::path& dir);

// The lines of a list file (one path per line), trailing spaces and CRs cut, blank lines and
// '#' comments skipped; throws Error when the file cannot be read.
std::vector<std::string> read_list_file(const fs::path& path);

// Appends one line (a newline is added) and flushes it to disk.
void append_line(const fs::path& path, const std::string& line);

// 64-bit FNV-1a, for cache fingerprints.
struct Fnv1a {
  uint64_t value = 1469598103934665603ull;
  void add(const void* data, size_t n);
  void add(const std::string& s) { add(s.data(), s.size() + 1); }  // + NUL keeps "ab","c" != "a","bc"
  void add(uint64_t v) { add(&v, sizeof v); }
};

std::string hex64(uint64_t v);

}  // namespace histotrain
