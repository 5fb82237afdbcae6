#include "test_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>

#include "synth/synth.h"

namespace histotrain::testing {

ScratchDir::ScratchDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("histotrain-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// One folder for the whole test program: shared synthetic datasets, and the tile cache, so tests
// never touch the user's cache (child histotrain processes inherit HISTOTRAIN_CACHE).
static ScratchDir& program_dir() {
  static ScratchDir dir;
  static const bool cache_set = ::setenv("HISTOTRAIN_CACHE", (dir.path() / "cache").c_str(), 1) == 0;
  (void)cache_set;
  return dir;
}
[[maybe_unused]] static const bool g_cache_isolated = (program_dir(), true);

fs::path shared_synthetic_dataset(int per_class, int size, uint64_t seed) {
  static std::mutex mutex;
  static std::map<std::string, fs::path> made;
  std::lock_guard<std::mutex> lock(mutex);
  const std::string key = std::to_string(per_class) + "-" + std::to_string(size) + "-" + std::to_string(seed);
  auto it = made.find(key);
  if (it != made.end()) return it->second;
  SynthOptions options;
  options.out = (program_dir().path() / ("synth-" + key)).string();
  options.per_class = per_class;
  options.size = size;
  options.seed = seed;
  options.quiet = true;
  write_synthetic_dataset(options);
  return made[key] = options.out;
}

std::string synth_data() { return shared_synthetic_dataset(40, 96).string(); }

uint64_t test_seed() {
  static const uint64_t seed = [] {
    const char* given = std::getenv("HISTOTRAIN_TEST_SEED");
    const uint64_t value = given && *given ? std::strtoull(given, nullptr, 10) : std::random_device{}();
    std::fprintf(stderr, "HISTOTRAIN_TEST_SEED=%llu (set it to replay the random moments of this run)\n",
                 static_cast<unsigned long long>(value));
    return value;
  }();
  return seed;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

static CommandResult run_command(const std::string& command_line, const ScratchDir& io) {
  const fs::path out = io / "stdout", err = io / "stderr";
  const std::string command = command_line + " >" + out.string() + " 2>" + err.string();
  const int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_text(out);
  result.err = read_text(err);
  return result;
}

CommandResult run_histotrain(const std::string& args) {
  ScratchDir io;
  return run_command(std::string(HISTOTRAIN_EXE) + " " + args, io);
}

fs::path shared_data(const std::string& name) {
  if (const char* env = std::getenv("HISTOTRAIN_SHARED_DATA"); env && *env) {
    const fs::path p = fs::path(env) / name;
    return fs::exists(p) ? p : fs::path();
  }
  const fs::path p = fs::path(HISTOTRAIN_SOURCE_DIR) / ".." / "shared" / "data" / name;
  return fs::exists(p) ? fs::canonical(p) : fs::path();
}

namespace {

// $HISTOTRAIN_PYTHON, else /usr/bin/python3, when it imports `modules`; else "".
std::string python_importing(const std::string& modules) {
  const char* configured = std::getenv("HISTOTRAIN_PYTHON");
  const std::string candidate = configured && *configured ? configured : "/usr/bin/python3";
  const std::string probe = candidate + " -c 'import " + modules + "' >/dev/null 2>&1";
  return std::system(probe.c_str()) == 0 ? candidate : std::string();
}

}  // namespace

std::string torchvision_python() {
  static const std::string python = python_importing("torchvision, numpy");
  return python;
}

std::string sklearn_python() {
  static const std::string python = python_importing("sklearn, numpy");
  return python;
}

std::string test_venv_python(const std::string& modules) {
  const char* configured = std::getenv("HISTOTRAIN_TEST_VENV");
  const fs::path venv = configured && *configured ? fs::path(configured) : fs::path(HISTOTRAIN_SOURCE_DIR) / "build-venv";
  const std::string python = (venv / "bin" / "python").string();
  const std::string probe = "'" + python + "' -c 'import " + modules + "' >/dev/null 2>&1";
  return fs::exists(python) && std::system(probe.c_str()) == 0 ? python : std::string();
}

bool packages_required() {
  const char* required = std::getenv("HISTOTRAIN_REQUIRE_PACKAGES");
  return required && std::string(required) == "1";
}

int run_torchvision_parity(const std::string& args) {
  const std::string command =
      torchvision_python() + " " + std::string(HISTOTRAIN_SOURCE_DIR) + "/tests/parity/torchvision_parity.py " + args;
  return std::system(command.c_str());
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace histotrain::testing
