#include "cli/predict_slides.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "cli/predict_explain.h"
#include "core/runtime.h"
#include "core/slide_report.h"
#include "slide/tile_grid.h"
#include "util/clock.h"
#include "util/csv.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/json_file.h"
#include "util/json_text.h"
#include "util/progress.h"

namespace histotrain {

namespace fs = std::filesystem;

namespace {

// This process's share of a job: torchrun and launch (RANK, WORLD_SIZE), a Slurm job step
// (SLURM_PROCID, SLURM_NTASKS) or a Slurm array (SLURM_ARRAY_TASK_ID from SLURM_ARRAY_TASK_MIN,
// SLURM_ARRAY_TASK_COUNT). No collective is needed: each rank's slides follow from the list.
std::pair<int, int> rank_and_world() {
  const auto env = [](const char* name) -> int {
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : -1;
  };
  if (env("WORLD_SIZE") > 0 && env("RANK") >= 0) return {env("RANK"), env("WORLD_SIZE")};
  if (env("SLURM_ARRAY_TASK_COUNT") > 0 && env("SLURM_ARRAY_TASK_ID") >= 0)
    return {env("SLURM_ARRAY_TASK_ID") - std::max(0, env("SLURM_ARRAY_TASK_MIN")), env("SLURM_ARRAY_TASK_COUNT")};
  if (env("SLURM_NTASKS") > 0 && env("SLURM_PROCID") >= 0) return {env("SLURM_PROCID"), env("SLURM_NTASKS")};
  return {0, 1};
}

// Each slide's folder name, unique.
std::vector<std::string> folder_names(const std::vector<std::string>& slides) {
  std::vector<std::string> names;
  std::map<std::string, int> used;
  for (const auto& s : slides) {
    std::string name = safe_name(fs::path(s).stem().string());
    if (used[name]++ > 0) name += "-" + std::to_string(used[name]);
    names.push_back(name);
  }
  return names;
}

// Slides split among ranks, largest tissue first, each to the rank with the least so far.
std::vector<size_t> my_slides(const std::vector<std::string>& slides, double slide_mpp, int rank, int world) {
  std::vector<std::pair<double, size_t>> areas;
  for (size_t i = 0; i < slides.size(); ++i) {
    double area = 0;
    try {
      const SlideFile slide(slides[i], slide_mpp);
      double downsample = 1;
      area = detect_tissue(slide.thumbnail(256, downsample), downsample).area_pixels();
    } catch (const Error&) {
      // unreadable: area 0, and the rank it falls to reports it
    }
    areas.push_back({area, i});
  }
  std::stable_sort(areas.begin(), areas.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<double> load(static_cast<size_t>(world), 0);
  std::vector<size_t> mine;
  for (const auto& [area, i] : areas) {
    const auto r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += area + 1;
    if (static_cast<int>(r) == rank) mine.push_back(i);
  }
  std::sort(mine.begin(), mine.end());
  return mine;
}

bool finished(const fs::path& folder) {
  try {
    return read_json_file(folder / "summary.json").value("status", "") == "done";
  } catch (const Error&) {
    return false;
  }
}

// slides.csv from every slide folder's summary: what is finished, failed or not yet run.
void write_index(const fs::path& out, const std::vector<std::string>& slides, const std::vector<std::string>& names,
                 const std::vector<std::string>& classes) {
  std::string csv = "slide,folder,status,tiles";
  for (const auto& c : classes) csv += "," + csv_field("fraction_" + c);
  csv += "\n";
  for (size_t i = 0; i < slides.size(); ++i) {
    nlohmann::json s;
    try {
      s = read_json_file(out / names[i] / "summary.json");
    } catch (const Error&) {
      s = {{"status", "not run"}};
    }
    csv += csv_field(slides[i]) + "," + csv_field(names[i]) + "," + csv_field(s.value("status", "")) + "," +
           std::to_string(s.value("tiles", 0));
    for (const auto& c : classes) {
      const auto& f = s.value("class_fractions", nlohmann::json::object());
      csv += "," + (f.contains(c) && f[c].is_number() ? std::to_string(f[c].get<double>()) : std::string());
    }
    csv += "\n";
  }
  write_file_atomically(out / "slides.csv", csv);
}

}  // namespace

int predict_slides(const SlidePredictOptions& o) {
  if (o.out.empty()) throw UsageError("predict --slide needs --out DIR: the slides' folders and slides.csv go there");
  set_threads(o.threads);
  const torch::Device device = parse_device(o.device);
  TrainedModel trained = open_trained_model(o.checkpoint, device, o.amp, o.trust_checkpoint);
  SlideInferenceOptions inference = o.inference;
  if (o.calibration != "none" && trained.temperature > 0) inference.temperature = trained.temperature;
  if (inference.mpp <= 0 && trained.input_mpp > 0) {
    inference.mpp = trained.input_mpp;  // the scale the model learnt at: a tissue's look depends on it
    std::fprintf(stderr, "reading tiles at %.4g microns per pixel, the scale of the model's training tiles\n", inference.mpp);
  } else if (inference.mpp <= 0) {
    std::fprintf(stderr, "reading tiles at each slide's full resolution: the model does not know its tiles' scale "
                         "(train on a manifest with an mpp column, or give --mpp)\n");
  }
  const EvidenceOptions evidence{o.evidence_tiles, explained_class(trained, o.evidence_class)};
  const std::vector<std::string> slides = expand_slide_paths(o.slides);
  if (slides.empty()) throw UsageError("no slides given");
  const std::vector<std::string> names = folder_names(slides);
  const auto [rank, world] = rank_and_world();
  ensure_writable_dir(o.out);
  const std::vector<size_t> mine = my_slides(slides, o.slide_mpp, rank, world);
  const auto start = Clock::now();
  int failed = 0;
  for (size_t n = 0; n < mine.size(); ++n) {
    const size_t i = mine[n];
    const fs::path folder = fs::path(o.out) / names[i];
    std::fprintf(stderr, "slide %zu of %zu (rank %d of %d): %s", n + 1, mine.size(), rank, world, printable(slides[i]).c_str());
    if (n > 0) std::fprintf(stderr, ", all slides ETA %s", format_duration(seconds_since(start) / n * (mine.size() - n)).c_str());
    std::fprintf(stderr, "\n");
    if (finished(folder)) {
      std::fprintf(stderr, "  done before: %s\n", printable((folder / "summary.json").string()).c_str());
      continue;
    }
    try {
      ensure_own_subfolder(folder);  // a link there is refused before anything is written
    } catch (const Error& e) {
      ++failed;
      std::fprintf(stderr, "  failed: %s\n", e.what());
      continue;
    }
    try {
      const SlideFile slide(slides[i], o.slide_mpp);
      const SlidePrediction p = predict_slide(trained, slide, inference, device);
      nlohmann::json summary = write_slide_outputs(slide, p, trained, folder);
      summary["evidence"] = write_slide_evidence(trained, slide, p, evidence, device, folder);
      summary["status"] = p.tiles.empty() ? "no tissue" : "done";
      write_file_atomically(folder / "summary.json", json_text(summary, 2) + "\n");
      if (p.tiles.empty()) {
        ++failed;
        std::fprintf(stderr, "  failed: no tissue found (%s shows what was taken for tissue)\n",
                     printable((folder / "tissue.png").string()).c_str());
        continue;
      }
      std::fprintf(stderr, "  %zu tiles in %s (%.1f tiles/s) -> %s\n", p.tiles.size(), format_duration(p.seconds).c_str(),
                   summary["tiles_per_s"].get<double>(), printable(folder.string()).c_str());
    } catch (const Error& e) {
      ++failed;
      std::fprintf(stderr, "  failed: %s\n", e.what());
      write_file_atomically(folder / "summary.json", json_text({{"status", "failed"}, {"error", e.what()}}, 2) + "\n");
    }
  }
  write_index(o.out, slides, names, trained.classes);  // every rank at its end: the last one's is complete
  if (failed) std::fprintf(stderr, "%d of %zu slide(s) failed (slides.csv says which)\n", failed, mine.size());
  return failed ? 1 : 0;
}

}  // namespace histotrain
