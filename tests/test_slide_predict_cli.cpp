// Predicting whole slides through the command line (predict --slide), as a pathologist's project
// uses it: a held-out slide predicted into its table, pictures and QuPath objects; bad slides
// reported while the others go on; slides split among ranks; a rerun that skips what is finished;
// memory that does not grow with the slide. Fixtures: slide_fixtures.h.
#include <gtest/gtest.h>

#include <tiffio.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "cli_harness.h"
#include "data/decode.h"
#include "data/png_encode.h"
#include "slide/geojson.h"
#include "slide/pyramid_tiff.h"
#include "slide/slide_file.h"
#include "slide_fixtures.h"
#include "test_util.h"
#include "util/csv.h"
#include "util/files.h"

namespace histotrain {
namespace {

namespace fs = std::filesystem;
using namespace histotrain::testing;  // the slide fixtures, run_cli, Finished, ScratchDir

// A slide given where tiles go is refused with the way to use it, never shrunk into one tile.
TEST(SlidesCli, ASlideGivenAsATileIsRefusedWithTheWayToUseIt) {
  if (!have_openslide()) GTEST_SKIP();
  ScratchDir dir;
  RgbImage wide(5000, 300);
  std::fill(wide.pixels.begin(), wide.pixels.end(), 200);
  write_file_atomically(dir / "scan.png", encode_png(wide));
  const Finished predicted = run_cli({"predict", "--checkpoint", quick_model().string(), "--csv",
                                      (dir / "p.csv").string(), (dir / "scan.png").string(), slide(1).string()});
  EXPECT_EQ(predicted.exit_code, 1) << "no image was a tile:\n" << predicted.err;
  const auto rows = read_table(dir / "p.csv");
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    EXPECT_NE(row.at("error").find("histotrain tile"), std::string::npos) << row.at("error");
    EXPECT_NE(row.at("error").find("predict --slide"), std::string::npos) << row.at("error");
  }
}

// Each predicted class's evidence picture: tiles tiles.csv calls the class, highest probability
// first, the class's best among them (how they are spread: SlideEvidence's unit test); most of them
// inside a true region of the class.
void expect_evidence_of_most_confident_tiles(const fs::path& out, const nlohmann::json& summary,
                                             const std::vector<std::map<std::string, std::string>>& tiles,
                                             const std::vector<Region>& regions) {
  std::map<std::string, std::vector<double>> called;  // class -> its tiles' probabilities, highest first
  std::map<std::pair<std::string, std::string>, const std::map<std::string, std::string>*> at;
  for (const auto& row : tiles) {
    called[row.at("predicted")].push_back(std::stod(row.at("p_" + row.at("predicted"))));
    at[{row.at("x"), row.at("y")}] = &row;
  }
  for (auto& [c, p] : called) std::sort(p.rbegin(), p.rend());
  ASSERT_EQ(summary["evidence"].size(), called.size()) << summary["evidence"];
  size_t judged = 0, right = 0;
  for (const auto& [c, p] : called) {
    const nlohmann::json& e = summary["evidence"][c];
    const DecodeResult picture = decode_image_file((out / e["picture"].get<std::string>()).string());
    EXPECT_TRUE(picture.ok && picture.image.width >= static_cast<int>(std::min<size_t>(4, p.size())) * 256) << e;
    ASSERT_EQ(e["tiles"].size(), std::min<size_t>(8, p.size())) << c;
    EXPECT_NEAR(e["tiles"][0]["probability"].get<double>(), p[0], 1e-5) << c;
    for (size_t i = 0; i < e["tiles"].size(); ++i) {
      const auto& t = e["tiles"][i];
      const auto row = at.find({std::to_string(t["x"].get<int64_t>()), std::to_string(t["y"].get<int64_t>())});
      ASSERT_NE(row, at.end()) << t;
      EXPECT_EQ(row->second->at("predicted"), c);
      EXPECT_NEAR(t["probability"].get<double>(), std::stod(row->second->at("p_" + c)), 1e-5) << t;
      if (i > 0) EXPECT_LE(t["probability"].get<double>(), e["tiles"][i - 1]["probability"].get<double>()) << c;
      const auto [label, share] = true_label(regions, t["x"].get<double>(), t["y"].get<double>(), 128);
      if (share < 0.5) continue;
      ++judged;
      right += label == c;
    }
  }
  EXPECT_GE(right, 0.8 * judged) << right << " of " << judged << " evidence tiles in a region of their class";
}

TEST(SlidesCli, AModelTrainedOnSlideTilesPredictsAHeldOutSlide) {
  if (!have_openslide()) GTEST_SKIP();
  ScratchDir dir;
  const Finished predicted = predict({slide(6).string()}, dir / "pred", {}, trained_on_slides());
  ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  EXPECT_NE(predicted.err.find("scale of the model's training tiles"), std::string::npos) << predicted.err;
  const fs::path out = dir / "pred" / "slide-6";
  const auto regions = true_regions(slides() / "slide-6.geojson");
  const auto tiles = read_table(out / "tiles.csv");
  size_t judged = 0, right = 0;
  for (const auto& row : tiles) {
    EXPECT_EQ(row.at("width"), "128");
    double total = 0;
    for (const auto& c : kClasses) total += std::stod(row.at("p_" + c));
    EXPECT_NEAR(total, 1.0, 1e-3);
    const auto [label, share] = true_label(regions, std::stod(row.at("x")), std::stod(row.at("y")), 128);
    if (share < 0.5) continue;  // a tile across a region's edge has no one true class
    ++judged;
    right += row.at("predicted") == label;
  }
  ASSERT_GT(judged, 80u);
  EXPECT_GE(static_cast<double>(right) / judged, 0.9) << right << " of " << judged << " tissue tiles";

  const nlohmann::json summary = testing::read_json(out / "summary.json");
  EXPECT_EQ(summary["status"], "done");
  EXPECT_EQ(summary["tiles"].get<size_t>(), tiles.size());
  double fractions = 0;
  for (const auto& c : kClasses) fractions += summary["class_fractions"][c].get<double>();
  EXPECT_NEAR(fractions, 1.0, 1e-6);
  double true_mm2 = 0;
  for (const auto& r : regions) true_mm2 += shoelace_area(r) * 0.5 * 0.5 / 1e6;
  EXPECT_NEAR(summary["tissue_area_mm2"].get<double>(), true_mm2, 0.15 * true_mm2);
  for (const auto& c : kClasses) EXPECT_TRUE(fs::exists(out / ("heatmap_" + c + ".png"))) << c;
  for (const char* png : {"overlay.png", "tissue.png"}) {
    const DecodeResult picture = decode_image_file((out / png).string());
    EXPECT_TRUE(picture.ok && picture.image.width >= 400) << png;
  }
  const auto index = read_table(dir / "pred" / "slides.csv");
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].at("status"), "done");
  expect_evidence_of_most_confident_tiles(out, summary, tiles, regions);

  // QuPath's objects: one square per tile, its class, read back by the project's reader and by
  // Python's json and shapely (run.sh installs it), each a valid polygon.
  const Annotations objects = read_annotations((out / "predictions.geojson").string());
  ASSERT_EQ(objects.regions.size(), tiles.size());
  for (size_t t = 0; t < tiles.size(); ++t) {
    EXPECT_EQ(objects.regions[t].label, tiles[t].at("predicted"));
    const Box box = bounds(objects.regions[t].polygon);
    EXPECT_EQ(box.x0, std::stod(tiles[t].at("x")));
    EXPECT_EQ(box.y1 - box.y0, 128);
  }
  const Finished python = testing::run_program(
      "/usr/bin/python3",
      {{"-c",
        "import json, sys\n"
        "d = json.load(open(sys.argv[1]))\n"
        "polys = [f['geometry']['coordinates'][0] for f in d['features']]\n"
        "assert all(p[0] == p[-1] and len(p) == 5 for p in polys)\n"
        "area = sum(abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(p, p[1:]))) / 2 for p in polys)\n"
        "from shapely.geometry import shape\n"
        "shapes = [shape(f['geometry']) for f in d['features']]\n"
        "assert all(s.is_valid for s in shapes)\n"
        "assert area == sum(s.area for s in shapes)\n"
        "print(len(polys), area)\n",
        (out / "predictions.geojson").string()}});
  ASSERT_EQ(python.exit_code, 0) << python.err;
  EXPECT_EQ(python.out, std::to_string(tiles.size()) + " " + std::to_string(tiles.size() * 128 * 128) + ".0\n");
}

TEST(SlidesCli, EvidenceOfOneClassOnlyOrNoneAndAnUnknownClassIsRefused) {
  if (!have_openslide()) GTEST_SKIP();
  ScratchDir dir;
  const std::vector<std::string> base = {"predict", "--checkpoint", trained_on_slides().string(), "--slide",
                                         slide(6).string(), "--threads", "2", "--quiet"};
  auto args = base;
  args.insert(args.end(), {"--out", (dir / "none").string(), "--evidence-tiles", "0"});
  const Finished none = run_cli(args);
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_TRUE(testing::read_json(dir / "none" / "slide-6" / "summary.json")["evidence"].empty());
  std::map<std::string, int> called;
  for (const auto& row : read_table(dir / "none" / "slide-6" / "tiles.csv")) ++called[row.at("predicted")];
  const std::string most = std::max_element(called.begin(), called.end(), [](const auto& a, const auto& b) {
                             return a.second < b.second;
                           })->first;

  args = base;
  args.insert(args.end(), {"--out", (dir / "one").string(), "--explain-class", most, "--evidence-tiles", "3"});
  const Finished one = run_cli(args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const nlohmann::json evidence = testing::read_json(dir / "one" / "slide-6" / "summary.json")["evidence"];
  ASSERT_EQ(evidence.size(), 1u) << evidence;
  EXPECT_EQ(evidence[most]["tiles"].size(), 3u);
  for (const auto& c : kClasses) EXPECT_EQ(fs::exists(dir / "one" / "slide-6" / ("evidence_" + c + ".png")), c == most) << c;

  args = base;
  args.insert(args.end(), {"--out", (dir / "bad").string(), "--explain-class", "stroma"});
  const Finished bad = run_cli(args);
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("stroma"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "bad" / "slide-6"));
}

// Writes a one-level tiled BigTIFF that claims `side` x `side` pixels and holds one tile.
void write_bottomless_tiff(const fs::path& path, uint32_t side) {
  TIFF* tif = TIFFOpen(path.c_str(), "w8");
  ASSERT_NE(tif, nullptr);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, side);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, side);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  TIFFSetField(tif, TIFFTAG_TILEWIDTH, 4096);
  TIFFSetField(tif, TIFFTAG_TILELENGTH, 4096);
  std::vector<uint8_t> tile(4096 * 4096 * 3, 200);
  TIFFWriteEncodedTile(tif, 0, tile.data(), static_cast<tmsize_t>(tile.size()));
  TIFFClose(tif);
}

TEST(SlidesCli, BadSlidesAreReportedAndTheOthersGoOn) {
  if (!have_openslide()) GTEST_SKIP();
  ScratchDir dir;
  const fs::path in = dir / "in";
  fs::create_directories(in);
  fs::copy_file(slide(6), in / "a-good.tif");
  const std::string bytes = testing::read_text(slide(6));
  std::ofstream(in / "b-cut.tif", std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  std::ofstream(in / "c-notes.svs") << "not a slide at all";
  RgbImage glass(1024, 768);
  std::fill(glass.pixels.begin(), glass.pixels.end(), 241);
  write_pyramid_tiff(pyramid_levels(glass), (in / "d-glass.tif").string(), 0.5);
  write_bottomless_tiff(in / "e-huge.tif", 1000000);
  std::ofstream(in / "a-good.geojson") << "{}";  // annotations beside a slide are not slides

  const Finished predicted = predict({in.string()}, dir / "pred");
  EXPECT_EQ(predicted.exit_code, 1) << predicted.err;
  EXPECT_FALSE(predicted.timed_out);
  EXPECT_LT(predicted.peak_rss_mib, 2048) << "a level of 10^12 pixels is never read whole";
  EXPECT_NE(predicted.err.find("4 of 5 slide(s) failed"), std::string::npos) << predicted.err;
  EXPECT_NE(predicted.err.find("no tissue found"), std::string::npos) << predicted.err;
  std::map<std::string, std::string> status;
  for (const auto& row : read_table(dir / "pred" / "slides.csv")) status[row.at("folder")] = row.at("status");
  EXPECT_EQ(status, (std::map<std::string, std::string>{
                        {"a-good", "done"}, {"b-cut", "failed"}, {"c-notes", "failed"}, {"d-glass", "no tissue"},
                        {"e-huge", "failed"}}));
  for (const char* name : {"b-cut", "c-notes", "e-huge"}) {
    const nlohmann::json failed = testing::read_json(dir / "pred" / name / "summary.json");
    EXPECT_FALSE(failed.value("error", "").empty()) << name;
  }

  const Finished too_big = run_cli({"predict", "--checkpoint", quick_model().string(), "--slide",
                                    slide(6).string(), "--tile-size", "4000", "--out", (dir / "big").string()});
  EXPECT_EQ(too_big.exit_code, 1);
  EXPECT_NE(too_big.err.find("does not fit"), std::string::npos) << too_big.err;
}

TEST(SlidesCli, RanksSplitTheSlidesAndARerunSkipsFinishedOnes) {
  if (!have_openslide()) GTEST_SKIP();
  ScratchDir dir;
  const std::vector<std::string> four = {slide(1).string(), slide(2).string(), slide(3).string(), slide(4).string()};
  testing::Invocation launch;
  launch.args = {"launch", "-n", "2", "--", "predict", "--checkpoint", quick_model().string(), "--out",
                 (dir / "pred").string(), "--quiet"};
  for (const auto& s : four) launch.args.insert(launch.args.end(), {"--slide", s});
  const Finished both = run_cli(launch);
  ASSERT_EQ(both.exit_code, 0) << both.err;
  // Each slide once, on one rank; two per rank (equal tissue areas).
  std::map<int, int> per_rank;
  for (int n = 1; n <= 4; ++n) {
    const std::string needle = "slide-" + std::to_string(n) + ".tif";
    int ranks = 0;
    for (int r = 0; r < 2; ++r)
      if (both.err.find("(rank " + std::to_string(r) + " of 2): " + slides().string() + "/" + needle) != std::string::npos)
        ++ranks, ++per_rank[r];
    EXPECT_EQ(ranks, 1) << needle << " in:\n" << both.err;
  }
  EXPECT_EQ(per_rank, (std::map<int, int>{{0, 2}, {1, 2}}));
  const auto index = read_table(dir / "pred" / "slides.csv");
  ASSERT_EQ(index.size(), 4u);
  for (const auto& row : index) EXPECT_EQ(row.at("status"), "done") << row.at("slide");

  // A Slurm array task gets the same share as the rank of its index.
  const Finished array_task = predict(four, dir / "array", {{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_MIN", "4"},
                                                            {"SLURM_ARRAY_TASK_COUNT", "2"}});
  ASSERT_EQ(array_task.exit_code, 0) << array_task.err;
  std::set<std::string> array_slides, rank1_slides;
  for (const auto& e : fs::directory_iterator(dir / "array"))
    if (fs::is_directory(e)) array_slides.insert(e.path().filename().string());
  for (int n = 1; n <= 4; ++n)
    if (both.err.find("(rank 1 of 2): " + slides().string() + "/slide-" + std::to_string(n)) != std::string::npos)
      rank1_slides.insert("slide-" + std::to_string(n));
  EXPECT_EQ(array_slides, rank1_slides);

  // Killed during slide-3: its summary never written. A rerun redoes it alone.
  fs::remove(dir / "pred" / "slide-3" / "summary.json");
  std::ofstream(dir / "pred" / "slide-3" / "tiles.csv") << "x,y,wid";
  const auto before = fs::last_write_time(dir / "pred" / "slide-1" / "summary.json");
  const Finished again = predict(four, dir / "pred");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  size_t skipped = 0;
  for (size_t at = again.err.find("done before"); at != std::string::npos; at = again.err.find("done before", at + 1))
    ++skipped;
  EXPECT_EQ(skipped, 3u) << again.err;
  EXPECT_EQ(fs::last_write_time(dir / "pred" / "slide-1" / "summary.json"), before);
  EXPECT_EQ(testing::read_json(dir / "pred" / "slide-3" / "summary.json")["status"], "done");
  EXPECT_GT(read_table(dir / "pred" / "slide-3" / "tiles.csv").size(), 50u);
}

TEST(SlidesCli, PeakMemoryDoesNotGrowWithTheSlide) {
  if (!have_openslide()) GTEST_SKIP();
  ScratchDir dir;
  const Finished made = run_cli({"synth", "--slide", "--width", "6144", "--height", "4608", "--seed", "9", "--quiet",
                                 "--out", (dir / "big").string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const Finished small = predict({slide(6).string()}, dir / "small-pred");
  const Finished large = predict({(dir / "big" / "slide-1.tif").string()}, dir / "large-pred");
  ASSERT_EQ(small.exit_code, 0) << small.err;
  ASSERT_EQ(large.exit_code, 0) << large.err;
  const auto small_tiles = testing::read_json(dir / "small-pred" / "slide-6" / "summary.json")["tiles"].get<int>();
  const auto large_tiles = testing::read_json(dir / "large-pred" / "slide-1" / "summary.json")["tiles"].get<int>();
  EXPECT_GT(large_tiles, 3 * small_tiles) << "4x the area";
  std::printf("peak RSS: %ld MiB for %d tiles, %ld MiB for %d tiles\n", small.peak_rss_mib, small_tiles,
              large.peak_rss_mib, large_tiles);
  EXPECT_LE(large.peak_rss_mib, 1.10 * small.peak_rss_mib)
      << small.peak_rss_mib << " MiB for " << small_tiles << " tiles, " << large.peak_rss_mib << " MiB for " << large_tiles;
}

}  // namespace
}  // namespace histotrain
