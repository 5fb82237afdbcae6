// Shared helpers for the tests: scratch folders, synthetic datasets, running the CLI binary.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace histotrain::testing {

namespace fs = std::filesystem;

// A fresh folder under the system temp dir, removed when the test ends.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// A synthetic LC25000-layout dataset written once per (per_class, size, seed) for the whole test
// program and shared read-only between tests.
fs::path shared_synthetic_dataset(int per_class, int size, uint64_t seed = 7);

// The dataset most end-to-end tests train on: 200 tiles of 96 px, 40 per class, with groups.csv.
std::string synth_data();

// The seed of anything a test draws at random (signal moments, delays): HISTOTRAIN_TEST_SEED when
// set, else drawn once per test program and printed, so that a failure can be replayed.
uint64_t test_seed();

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs the histotrain binary with `args` (already shell-quoted where needed).
CommandResult run_histotrain(const std::string& args);

// A JSON file, and a file of one JSON object per line.
nlohmann::json read_json(const fs::path& path);
std::vector<nlohmann::json> read_jsonl(const fs::path& path);
std::string read_text(const fs::path& path);

// ../shared/data/<name> beside the source tree, or "" when it is not there.
fs::path shared_data(const std::string& name);

// The command that runs a Python with torchvision and numpy ($HISTOTRAIN_PYTHON, else Debian's
// /usr/bin/python3), or "" when there is none: the parity checks are skipped then.
std::string torchvision_python();

// The same for a Python with scikit-learn and numpy (the metric parity checks).
std::string sklearn_python();

// The Python of the tests' virtual environment (run.sh makes build-venv from
// tests/python-requirements.txt: onnx, onnxruntime, tensorboard; $HISTOTRAIN_TEST_VENV elsewhere)
// when it imports `modules`, else "".
std::string test_venv_python(const std::string& modules);

// Whether every package run.sh installs must be here ($HISTOTRAIN_REQUIRE_PACKAGES, set by
// `run.sh test` and so by CI): a test that would skip for a missing one fails instead, so that a
// package installed by hand on one machine cannot hide a gap in the install.
bool packages_required();

// Runs tests/parity/torchvision_parity.py with `args`; returns its exit code.
int run_torchvision_parity(const std::string& args);

// Writes bytes to a file.
void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes);

}  // namespace histotrain::testing
