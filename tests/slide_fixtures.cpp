#include "slide_fixtures.h"

#include <gtest/gtest.h>

#include <cmath>

#include "slide/slide_file.h"
#include "test_util.h"
#include "util/csv.h"

namespace histotrain::testing {

namespace fs = std::filesystem;

bool have_openslide() {
  if (slides_supported()) return true;
  EXPECT_FALSE(testing::packages_required()) << "no OpenSlide: run.sh installs libopenslide-dev";
  return false;
}

std::vector<Region> true_regions(const fs::path& geojson) {
  std::vector<Region> regions;
  const nlohmann::json doc = testing::read_json(geojson);
  for (const auto& f : doc["features"]) {
    Region r{f["properties"]["classification"]["name"].get<std::string>(), {}};
    for (const auto& ring : f["geometry"]["coordinates"]) {
      r.rings.emplace_back();
      for (const auto& p : ring) r.rings.back().push_back({p[0].get<double>(), p[1].get<double>()});
    }
    regions.push_back(r);
  }
  return regions;
}

bool inside(const Region& r, double x, double y) {
  bool in = false;
  for (const auto& ring : r.rings)
    for (size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++) {
      const auto [xi, yi] = ring[i];
      const auto [xj, yj] = ring[j];
      if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) in = !in;
    }
  return in;
}

std::pair<std::string, double> true_label(const std::vector<Region>& regions, double x, double y, double side) {
  std::map<std::string, int> hits;
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j)
      for (const auto& r : regions)
        if (inside(r, x + (i + 0.5) * side / 16, y + (j + 0.5) * side / 16)) ++hits[r.label];
  std::pair<std::string, double> best{"", 0.0};
  for (const auto& [label, n] : hits)
    if (n / 256.0 > best.second) best = {label, n / 256.0};
  return best;
}

double shoelace_area(const Region& r) {
  double total = 0;
  for (size_t k = 0; k < r.rings.size(); ++k) {
    double a = 0;
    const auto& ring = r.rings[k];
    for (size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++)
      a += ring[j].first * ring[i].second - ring[i].first * ring[j].second;
    total += (k == 0 ? 1 : -1) * std::abs(a) / 2;
  }
  return total;
}

std::vector<std::map<std::string, std::string>> read_table(const fs::path& path) {
  const auto records = parse_csv(testing::read_text(path), path.string());
  std::vector<std::map<std::string, std::string>> rows;
  for (size_t r = 1; r < records.size(); ++r) {
    std::map<std::string, std::string> row;
    for (size_t c = 0; c < records[0].fields.size() && c < records[r].fields.size(); ++c)
      row[records[0].fields[c]] = records[r].fields[c];
    rows.push_back(row);
  }
  return rows;
}

const fs::path& slides() {
  static const fs::path folder = [] {
    static ScratchDir dir;
    const Finished made = run_cli({"synth", "--slide", "--count", "6", "--width", "3072", "--height", "2304", "--seed",
                                   "3", "--quiet", "--out", (dir / "slides").string()});
    EXPECT_EQ(made.exit_code, 0) << made.err;
    return dir / "slides";
  }();
  return folder;
}

fs::path slide(int n) { return slides() / ("slide-" + std::to_string(n) + ".tif"); }

fs::path train_on_slides(const fs::path& dir, const std::vector<int>& slide_numbers, int epochs) {
  std::vector<std::string> args = {"tile"};
  for (int n : slide_numbers) args.push_back(slide(n).string());
  args.insert(args.end(), {"--annotations", slides().string(), "--out", (dir / "tiles").string()});
  args.insert(args.end(), kTileArgs.begin(), kTileArgs.end());
  const Finished cut = run_cli(args);
  EXPECT_EQ(cut.exit_code, 0) << cut.err;
  const Finished trained =
      run_cli({"train", "--manifest", (dir / "tiles" / "manifest.csv").string(), "--arch", "resnet10", "--image-size",
               "64", "--epochs", std::to_string(epochs), "--color-jitter", "0.3", "--val-fraction", "0", "--threads", "2",
               "--bootstrap", "0", "--quiet", "--out", (dir / "run").string()});
  EXPECT_EQ(trained.exit_code, 0) << trained.err;
  return dir / "run";
}

const fs::path& trained_on_slides() {
  static ScratchDir dir;
  static const fs::path run = train_on_slides(dir.path(), {1, 2, 3, 4, 5}, 25);
  return run;
}

const fs::path& quick_model() {
  static ScratchDir dir;
  static const fs::path run = train_on_slides(dir.path(), {1}, 1);
  return run;
}

Finished predict(const std::vector<std::string>& slide_args, const fs::path& out,
                 const std::map<std::string, std::string>& env, const fs::path& model) {
  testing::Invocation call;
  call.args = {"predict", "--checkpoint", model.string(), "--out", out.string(), "--threads", "2"};
  for (const auto& s : slide_args) call.args.insert(call.args.end(), {"--slide", s});
  call.env = env;
  return run_cli(call);
}

}  // namespace histotrain::testing
