#include "bench/decode_timing.h"

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <fstream>

#include "data/tile_cache.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/process.h"

namespace histotrain {

namespace {

// Every parts-th path from `part` on: one worker's share.
void write_list(const std::filesystem::path& path, const std::vector<std::string>& paths, int part, int parts) {
  std::string text;
  for (size_t i = static_cast<size_t>(part); i < paths.size(); i += static_cast<size_t>(parts)) text += paths[i] + "\n";
  write_file_atomically(path, text);
}

}  // namespace

nlohmann::json decode_listed_images(const std::string& list, int size, int threads) {
  const std::vector<std::string> paths = read_list_file(list);
  std::vector<uint8_t> out(static_cast<size_t>(size) * size * 3 * std::max<size_t>(1, paths.size()));
  std::atomic<int64_t> failed{0};
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(std::max(1, threads)));
  const auto start = Clock::now();
  tbb::parallel_for(size_t{0}, paths.size(), [&](size_t i) {
    if (!decode_tile(paths[i], size, out.data() + i * size * size * 3, nullptr)) ++failed;
  });
  return {{"images", paths.size()}, {"failed", failed.load()}, {"seconds", seconds_since(start)}};
}

std::pair<double, double> decode_with_threads(const std::vector<std::string>& paths, int size, int threads,
                                              const std::filesystem::path& work) {
  const std::filesystem::path list = work / "decode-all.txt";
  write_list(list, paths, 0, 1);
  const auto start = Clock::now();
  decode_listed_images(list.string(), size, threads);
  const double seconds = seconds_since(start);
  return {seconds, seconds};
}

std::pair<double, double> decode_with_processes(const std::string& exe, const std::vector<std::string>& paths,
                                                int size, int processes, const std::filesystem::path& work) {
  std::vector<std::vector<std::string>> commands;
  std::vector<std::filesystem::path> outputs, logs;
  for (int p = 0; p < processes; ++p) {
    const std::filesystem::path part = work / ("decode-" + std::to_string(p) + "-of-" + std::to_string(processes));
    write_list(part.string() + ".txt", paths, p, processes);
    commands.push_back({exe, "decode-bench", "--list", part.string() + ".txt", "--size", std::to_string(size),
                        "--threads", "1"});
    outputs.push_back(part.string() + ".json");
    logs.push_back(part.string() + ".log");
  }
  const auto start = Clock::now();
  std::vector<pid_t> workers;
  for (size_t p = 0; p < commands.size(); ++p) workers.push_back(start_process(commands[p], {outputs[p], logs[p], {}}));
  for (pid_t worker : workers) wait_process(worker);
  const double wall = seconds_since(start);
  double slowest = 0;
  for (const auto& output : outputs) {
    std::ifstream in(output);
    nlohmann::json j;
    if (!(in >> j)) throw Error("a decode worker wrote no result: " + output.string());
    slowest = std::max(slowest, j.value("seconds", 0.0));
  }
  return {wall, slowest};
}

}  // namespace histotrain
