// Timing JPEG decoding + resizing of a list of tiles, with threads in one process or with
// separate processes (as Python's multiprocessing.Pool would): the study's decoding figures.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace histotrain {

// Decodes the tiles listed in `list` (one path per line) at `size` px with `threads` threads:
// {"images", "failed", "seconds"}. What `histotrain decode-bench` prints.
nlohmann::json decode_listed_images(const std::string& list, int size, int threads);

// {wall seconds, decoding seconds} for `paths` decoded by `threads` threads in this process;
// the list file is written under `work`.
std::pair<double, double> decode_with_threads(const std::vector<std::string>& paths, int size, int threads,
                                              const std::filesystem::path& work);

// The same with N processes of `exe decode-bench`, each with one thread and 1/N of the files,
// started together. Wall: until the last one ends, start-up included; decoding: the slowest
// worker's own decode time.
std::pair<double, double> decode_with_processes(const std::string& exe, const std::vector<std::string>& paths,
                                                int size, int processes, const std::filesystem::path& work);

}  // namespace histotrain
