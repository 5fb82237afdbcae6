// Cutting tiles from whole slides through the command line (histotrain tile): labels from QuPath
// annotations checked against the true regions, and bad annotations and files reported while the
// other slides go on. Fixtures: slide_fixtures.h.
#include <gtest/gtest.h>

#include <tiffio.h>

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

TEST(SlidesCli, TileGivesEachTileTheRegionThatCoversIt) {
  if (!have_openslide()) GTEST_SKIP();
  ScratchDir dir;
  std::vector<std::string> args = {"tile", slide(1).string(), "--annotations", slides().string(), "--out",
                                   (dir / "tiles").string()};
  args.insert(args.end(), kTileArgs.begin(), kTileArgs.end());
  const Finished cut = run_cli(args);
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  const auto regions = true_regions(slides() / "slide-1.geojson");
  const auto rows = read_table(dir / "tiles" / "manifest.csv");
  EXPECT_EQ(testing::read_text(dir / "tiles" / "manifest.csv").substr(0, 31), "path,label,group,slide,x,y,mpp\n");
  ASSERT_GT(rows.size(), 60u);
  std::set<std::string> labels;
  for (const auto& row : rows) {
    const double x = std::stod(row.at("x")), y = std::stod(row.at("y"));
    const auto [label, share] = true_label(regions, x, y, 128);  // 64 px at 1 um = 128 level-0 px at 0.5 um
    EXPECT_EQ(row.at("label"), label) << "tile at " << x << "," << y;
    EXPECT_GE(share, 0.4) << "tile at " << x << "," << y << " is mostly outside its region";
    EXPECT_EQ(row.at("group"), "slide-1");
    EXPECT_EQ(row.at("slide"), "slide-1.tif");
    EXPECT_NEAR(std::stod(row.at("mpp")), 1.0, 1e-6);
    labels.insert(row.at("label"));
  }
  EXPECT_EQ(labels, std::set<std::string>(kClasses.begin(), kClasses.end()));
  const DecodeResult first = decode_image_file((dir / "tiles" / rows.front().at("path")).string());
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_EQ(first.image.width, 64);
  EXPECT_EQ(first.image.height, 64);
  EXPECT_TRUE(fs::exists(dir / "tiles" / "slide-1" / "tissue.png"));

  // One label per slide from a CSV; two slides of one patient share the group.
  std::ofstream(dir / "slides.csv") << "slide,patient,label\nslide-1.tif,patient-A,lung_aca\nslide-2,patient-A,lung_aca\n";
  args = {"tile", slide(1).string(), slide(2).string(), "--slides", (dir / "slides.csv").string(), "--out",
          (dir / "by-slide").string()};
  args.insert(args.end(), kTileArgs.begin(), kTileArgs.end());
  const Finished by_slide = run_cli(args);
  ASSERT_EQ(by_slide.exit_code, 0) << by_slide.err;
  const auto slide_rows = read_table(dir / "by-slide" / "manifest.csv");
  std::set<std::string> from_slides;
  for (const auto& row : slide_rows) {
    EXPECT_EQ(row.at("label"), "lung_aca");
    EXPECT_EQ(row.at("group"), "patient-A");
    from_slides.insert(row.at("slide"));
  }
  EXPECT_EQ(from_slides, (std::set<std::string>{"slide-1.tif", "slide-2.tif"}));
}

TEST(SlidesCli, BadAnnotationsAreSkippedByNameAndBadFilesFailTheirSlideOnly) {
  if (!have_openslide()) GTEST_SKIP();
  ScratchDir dir;
  fs::create_directories(dir / "notes");
  // slide-1: a region outside the slide, a self-intersecting bow tie, an empty polygon, a name
  // not among --labels, and one good region copied from the truth.
  nlohmann::json truth = testing::read_json(slides() / "slide-1.geojson");
  nlohmann::json features = nlohmann::json::array();
  features.push_back(truth["features"][0]);
  const auto feature = [](const std::string& name, const nlohmann::json& ring) {
    return nlohmann::json{{"type", "Feature"},
                          {"geometry", {{"type", "Polygon"}, {"coordinates", nlohmann::json::array({ring})}}},
                          {"properties", {{"classification", {{"name", name}}}}}};
  };
  features.push_back(feature("lung_n", {{50000, 50000}, {60000, 50000}, {60000, 60000}}));
  features.push_back(feature("lung_n", {{0, 0}, {3000, 2000}, {3000, 0}, {0, 2000}}));
  features.push_back(feature("lung_n", nlohmann::json::array()));
  features.push_back(feature("mystery", {{0, 0}, {3000, 0}, {3000, 2000}, {0, 2000}}));
  std::ofstream(dir / "notes" / "slide-1.geojson") << nlohmann::json{{"type", "FeatureCollection"}, {"features", features}};
  // slide-2: 100 MB; slide-3: nested 10^4 deep.
  std::ofstream(dir / "notes" / "slide-2.geojson").close();
  fs::resize_file(dir / "notes" / "slide-2.geojson", uint64_t{100} << 20);
  std::ofstream(dir / "notes" / "slide-3.geojson") << std::string(10000, '[') << std::string(10000, ']');

  std::vector<std::string> args = {"tile", slide(1).string(), slide(2).string(), slide(3).string(), "--annotations",
                                   (dir / "notes").string(), "--labels", "colon_aca,colon_n,lung_aca,lung_n,lung_scc",
                                   "--tile-size", "64", "--mpp", "1.0", "--out", (dir / "tiles").string()};
  const Finished cut = run_cli(args);
  EXPECT_EQ(cut.exit_code, 1) << cut.err;
  EXPECT_FALSE(cut.timed_out);
  EXPECT_LT(cut.peak_rss_mib, 1024) << "a 100 MB annotation file is refused unread";
  for (const char* reported : {"wholly outside the slide", "empty or degenerate", "not among --labels ('mystery')",
                               "slide-2.tif", "slide-3.tif", "2 of 3 slide(s) could not be cut"})
    EXPECT_NE(cut.err.find(reported), std::string::npos) << reported << " in:\n" << cut.err;
  const auto rows = read_table(dir / "tiles" / "manifest.csv");
  ASSERT_FALSE(rows.empty()) << "slide-1's good region still gives tiles";
  const std::string first_label = truth["features"][0]["properties"]["classification"]["name"];
  std::set<std::string> labels;
  for (const auto& row : rows) labels.insert(row.at("label"));
  EXPECT_TRUE(labels.count(first_label)) << "the good region's tiles";
  EXPECT_FALSE(labels.count("mystery"));

  // A tile larger than the slide, and a tile side beyond any tile's.
  const Finished too_big = run_cli({"tile", slide(1).string(), "--annotations", slides().string(), "--tile-size",
                                    "4000", "--out", (dir / "big").string(), "--quiet"});
  EXPECT_EQ(too_big.exit_code, 1);
  EXPECT_NE(too_big.err.find("does not fit"), std::string::npos) << too_big.err;
  const Finished absurd = run_cli({"tile", slide(1).string(), "--annotations", slides().string(), "--tile-size",
                                   "100000", "--out", (dir / "absurd").string()});
  EXPECT_NE(absurd.exit_code, 0);
  EXPECT_NE(absurd.err.find("--tile-size"), std::string::npos) << absurd.err;
}

}  // namespace
}  // namespace histotrain
