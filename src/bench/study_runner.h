// Runs a study's plan on this machine: every training configuration as its own `histotrain train`
// (or `launch`) process, repeated; the Python peer with the same settings; the time-to-accuracy
// runs; the data-loading study. Results go to STUDY/results.json after every run, so a study
// that is stopped keeps what it measured.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/study_plan.h"

namespace histotrain {

struct StudyOptions {
  std::string data;           // dataset root
  std::string groups;         // optional groups CSV (else groups are found from the pixels)
  std::string out;            // the study folder
  std::string cache_dir;      // tile cache ("" : STUDY/cache)
  std::string peer;           // torch_reference.py ("": no peer rows)
  // The interpreters that run the peer, each with its rows: the first's program is "peer" (what
  // histotrain's figures are compared with), the others' "peer torch VERSION".
  std::vector<std::string> peer_pythons = {"/usr/bin/python3"};
  // Each interpreter with PyTorch 2.x also under torch.compile ("peer torch VERSION compiled"):
  // images/s after its first steps, and the compile time apart.
  bool peer_compile = false;
  bool quiet = false;
};

// Returns the results (also in STUDY/results.json).
nlohmann::json run_study(const StudyPlan& plan, const StudyOptions& options);

}  // namespace histotrain
