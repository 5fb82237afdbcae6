// Whole slides: a synthetic pyramidal TIFF read back through OpenSlide pixel for pixel at every
// level, the resolution choosing the level, the tissue detector against the true regions (glass,
// pen and dust kept out), GeoJSON annotations read and written, and bad slides and annotations
// refused by name.
#include <gtest/gtest.h>

#include <fstream>

#include "data/png_encode.h"
#include "slide/geojson.h"
#include "slide/pyramid_tiff.h"
#include "slide/slide_file.h"
#include "slide/tile_grid.h"
#include "slide/tissue.h"
#include "synth/synth_slide.h"
#include "test_util.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

bool have_openslide() {
  if (slides_supported()) return true;
  EXPECT_FALSE(testing::packages_required()) << "no OpenSlide: run.sh installs libopenslide-dev";
  return false;
}

struct WrittenSlide {
  std::vector<Annotation> regions;
  std::vector<RgbImage> levels;
  fs::path path;
};

// A 3072 x 2304 synthetic slide at 0.5 um/px, written and kept in memory.
const WrittenSlide& synthetic_slide() {
  static const WrittenSlide slide = [] {
    static ScratchDir dir;
    WrittenSlide s;
    SyntheticSlideOptions o;
    o.width = 3072;
    o.height = 2304;
    o.seed = 11;
    s.levels = pyramid_levels(paint_synthetic_slide(o, s.regions));
    s.path = dir / "slide.tif";
    write_pyramid_tiff(s.levels, s.path.string(), o.mpp);
    return s;
  }();
  return slide;
}

TEST(Slides, EveryLevelReadsBackThePixelsWrittenThere) {
  if (!have_openslide()) GTEST_SKIP();
  const WrittenSlide& s = synthetic_slide();
  const SlideFile slide(s.path.string());
  ASSERT_EQ(slide.levels().size(), s.levels.size());
  EXPECT_EQ(slide.width(), 3072);
  EXPECT_NEAR(slide.mpp(), 0.5, 1e-6) << slide.mpp_source();
  for (size_t l = 0; l < s.levels.size(); ++l) {
    const double ds = slide.levels()[l].downsample;
    EXPECT_NEAR(ds, static_cast<double>(1 << l), 1e-9);
    // Level-0 corners on every level's grid (a multiple of 8): OpenSlide renders a corner between
    // a level's pixels by interpolation, which is no longer the pixels written.
    for (const auto& [x, y] : {std::pair<int, int>{0, 0}, {704, 512}, {1280, 1024}}) {
      const int w = 64, h = 48, lx = static_cast<int>(x / ds), ly = static_cast<int>(y / ds);
      if (lx + w > s.levels[l].width || ly + h > s.levels[l].height) continue;
      const RgbImage read = slide.read(x, y, static_cast<int>(l), w, h);
      for (int r = 0; r < h; ++r)
        ASSERT_TRUE(std::equal(read.pixels.begin() + static_cast<std::ptrdiff_t>(r) * w * 3,
                               read.pixels.begin() + static_cast<std::ptrdiff_t>(r + 1) * w * 3,
                               s.levels[l].pixels.begin() + ((static_cast<std::ptrdiff_t>(ly) + r) * s.levels[l].width + lx) * 3))
            << "level " << l << " at (" << x << ", " << y << "), row " << r;
    }
  }
}

TEST(Slides, TheResolutionChoosesTheLevelAndTheScale) {
  if (!have_openslide()) GTEST_SKIP();
  const SlideFile slide(synthetic_slide().path.string());
  const TileGeometry same = tile_geometry(slide, 128, 0);
  EXPECT_EQ(same.side0, 128);
  EXPECT_EQ(same.level, 0);
  const TileGeometry half = tile_geometry(slide, 128, 1.0);  // 1 um/px on a 0.5 um/px slide
  EXPECT_EQ(half.side0, 256);
  EXPECT_EQ(half.level, 1);
  EXPECT_EQ(half.read_side, 128) << "level 1 holds the tile at its own size";
  const TileGeometry quarter = tile_geometry(slide, 64, 2.0);
  EXPECT_EQ(quarter.side0, 256);
  EXPECT_EQ(quarter.level, 2);
  const TileGeometry between = tile_geometry(slide, 100, 0.75);
  EXPECT_EQ(between.level, 0) << "no level at 1.5x: read level 0 and resize";
  EXPECT_EQ(between.read_side, 150);
  EXPECT_EQ(read_tile(slide, half, 512, 512).width, 128);
  EXPECT_THROW(tile_geometry(slide, 2048, 4.0), Error) << "a tile larger than the slide";
  const SlideFile stated(synthetic_slide().path.string(), 0.25);
  EXPECT_EQ(tile_geometry(stated, 128, 1.0).side0, 512) << "--slide-mpp replaces the slide's own";
}

// The detected tissue against the true regions, on the thumbnail's grid.
TEST(Slides, TissueMatchesTheTrueRegionsAndLeavesGlassPenAndDustOut) {
  if (!have_openslide()) GTEST_SKIP();
  const WrittenSlide& s = synthetic_slide();
  const SlideFile slide(s.path.string());
  double downsample = 1;
  const RgbImage thumbnail = slide.thumbnail(1024, downsample);
  const TissueMask mask = detect_tissue(thumbnail, downsample);
  if (const char* debug = std::getenv("HISTOTRAIN_DEBUG_TISSUE"))
    write_file_atomically(debug, encode_png(tissue_picture(thumbnail, mask)));
  int64_t both = 0, either = 0, outside_margin = 0, detected = 0;
  for (int y = 0; y < mask.height; ++y)
    for (int x = 0; x < mask.width; ++x) {
      const double cx = (x + 0.5) * downsample, cy = (y + 0.5) * downsample;
      bool truth = false, near = false;
      for (const auto& r : s.regions) {
        truth = truth || contains(r.polygon, cx, cy);
        near = near || coverage(r.polygon, {cx - 3 * downsample, cy - 3 * downsample, cx + 3 * downsample, cy + 3 * downsample}, 4) > 0;
      }
      const bool found = mask.at(x, y);
      both += truth && found;
      either += truth || found;
      detected += found;
      outside_margin += found && !near;
    }
  const double iou = static_cast<double>(both) / static_cast<double>(either);
  std::printf("tissue IoU %.3f; %lld of %lld detected pixels away from any region\n", iou,
              static_cast<long long>(outside_margin), static_cast<long long>(detected));
  EXPECT_GE(iou, 0.9) << mask.method;
  EXPECT_LT(static_cast<double>(outside_margin), 0.002 * static_cast<double>(detected))
      << "glass, pen strokes and dust are not tissue";
}

TEST(Slides, GeojsonRoundTripsAndBadAnnotationsAreSkippedByName) {
  ScratchDir dir;
  std::vector<GeoFeature> features;
  features.push_back({{{{{10, 10}, {200, 10}, {200, 150}, {10, 150}}}}, "tumour", {200, 0, 0}, {{"p", 0.5}}});
  features.push_back({{{{{300, 300}, {500, 300}, {400, 480}}, {{380, 350}, {420, 350}, {400, 390}}}}, "stroma", {0, 0, 200}, {}});
  write_file_atomically(dir / "a.geojson", geojson_text(features, "annotation"));
  const Annotations read = read_annotations((dir / "a.geojson").string(), 1000, 1000);
  ASSERT_EQ(read.regions.size(), 2u);
  EXPECT_EQ(read.regions[1].label, "stroma");
  ASSERT_EQ(read.regions[1].polygon.rings.size(), 2u) << "the hole comes back";
  EXPECT_NEAR(area(read.regions[0].polygon), 190.0 * 140, 1e-6);
  EXPECT_FALSE(contains(read.regions[1].polygon, 400, 365)) << "inside the hole";

  // Outside the slide, empty, a point, no classification, a self-intersecting bow tie (kept: its
  // inside is defined by the even-odd rule), a MultiPolygon of two.
  std::ofstream(dir / "bad.geojson") << R"({"type": "FeatureCollection", "features": [
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[5000, 5000], [6000, 5000], [6000, 6000]]]},
     "properties": {"classification": {"name": "tumour"}}},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[]]}, "properties": {"classification": {"name": "x"}}},
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}, "properties": {"classification": {"name": "x"}}},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10]]]}, "properties": {}},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [100, 100], [100, 0], [0, 100]]]},
     "properties": {"classification": "bowtie"}},
    {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [[[[0, 0], [5, 0], [5, 5]]], [[[50, 50], [60, 50], [60, 60]]]]},
     "properties": {"classification": {"name": "multi"}}}]})";
  const Annotations bad = read_annotations((dir / "bad.geojson").string(), 1000, 1000);
  EXPECT_EQ(bad.regions.size(), 3u) << bad.describe();
  EXPECT_EQ(bad.skipped.at("a polygon wholly outside the slide"), 1);
  EXPECT_EQ(bad.skipped.at("an empty or degenerate polygon"), 1);
  EXPECT_EQ(bad.skipped.at("no classification"), 1);
  EXPECT_TRUE(contains(bad.regions[0].polygon, 20, 50)) << "the bow tie's left lobe";
  EXPECT_FALSE(contains(bad.regions[0].polygon, 50, 20)) << "between its lobes";

  // Too large, or nested too deep: refused by name before anything is built.
  std::ofstream(dir / "huge.geojson").close();
  fs::resize_file(dir / "huge.geojson", uint64_t{100} << 20);
  EXPECT_THROW(read_annotations((dir / "huge.geojson").string()), Error);
  std::ofstream(dir / "deep.geojson") << std::string(10000, '[') << std::string(10000, ']');
  try {
    read_annotations((dir / "deep.geojson").string());
    ADD_FAILURE() << "nested 10^4 deep";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deep.geojson"), std::string::npos) << e.what();
  }
}

// A slide's name becomes a folder and file names: never a path, never hidden, never empty.
TEST(Slides, SlideNamesBecomePlainFileNames) {
  EXPECT_EQ(safe_name("case 12/A:b"), "case_12_A_b");
  EXPECT_EQ(safe_name(".."), "slide..");
  EXPECT_EQ(safe_name("../../etc/passwd"), "slide.._.._etc_passwd");
  EXPECT_EQ(safe_name(""), "slide");
  EXPECT_EQ(safe_name("\x1b[31mred\n"), "__31mred_");
  EXPECT_EQ(safe_name(std::string(500, 'a')).size(), 120u);
  for (const std::string& name : {std::string(".."), std::string("a/../b"), std::string("\xff\xfe")}) {
    const fs::path p(safe_name(name));
    EXPECT_EQ(p.filename(), p) << name;
    EXPECT_NE(p.string()[0], '.') << name;
  }
}

TEST(Slides, DamagedUnknownAndBottomlessSlidesAreClearErrors) {
  if (!have_openslide()) GTEST_SKIP();
  ScratchDir dir;
  std::ofstream(dir / "notes.svs") << "not a slide";
  EXPECT_THROW(SlideFile((dir / "notes.svs").string()), Error);
  // Cut short: the header survives, the tiles do not.
  const std::string bytes = testing::read_text(synthetic_slide().path);
  std::ofstream(dir / "cut.tif", std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  bool refused = false;
  try {
    const SlideFile cut((dir / "cut.tif").string());
    double ds = 1;
    cut.thumbnail(512, ds);
  } catch (const Error&) {
    refused = true;
  }
  EXPECT_TRUE(refused) << "a truncated slide is an error, not a picture of zeros";
  // A slide of glass only: no tissue at all.
  SyntheticSlideOptions glass;
  glass.width = 1024;
  glass.height = 768;
  glass.classes = {"colon_n"};
  std::vector<Annotation> regions;
  RgbImage blank(1024, 768);
  std::fill(blank.pixels.begin(), blank.pixels.end(), 241);
  write_pyramid_tiff(pyramid_levels(blank), (dir / "glass.tif").string(), 0.5);
  const SlideFile empty((dir / "glass.tif").string());
  double ds = 1;
  const TissueMask mask = detect_tissue(empty.thumbnail(512, ds), ds);
  EXPECT_EQ(mask.area_pixels(), 0) << mask.method;
}

}  // namespace
}  // namespace histotrain
