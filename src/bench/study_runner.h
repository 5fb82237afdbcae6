// Runs a study's plan on this machine: every training configuration as its own `histotrain train`
// (or `launch`) process, repeated; the Python peer with the same settings; the time-to-accuracy
// runs; the data-loading study. Results go to STUDY/results.json after every run, so a study
// that is stopped keeps what it measured.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "bench/study_plan.h"

namespace histotrain {

struct StudyOptions {
  std::string data;           // dataset root
  std::string groups;         // optional groups CSV (else groups are found from the pixels)
  std::string out;            // the study folder
  std::string cache_dir;      // tile cache ("" : STUDY/cache)
  std::string peer;           // torch_reference.py ("": no peer rows)
  std::string python = "/usr/bin/python3";
  bool quiet = false;
};

// Returns the results (also in STUDY/results.json).
nlohmann::json run_study(const StudyPlan& plan, const StudyOptions& options);

}  // namespace histotrain
