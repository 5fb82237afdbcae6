// A tile set in several formats at once, as a user's own data may be: the histotrain binary scans,
// caches, trains, evaluates and predicts on it, counting the damaged files and refusing a pyramid.
// The files are converted from the synthetic set by ImageMagick at run time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>

#include "cli_harness.h"
#include "test_util.h"
#include "util/csv.h"

namespace histotrain {
namespace {

using testing::run_histotrain;
using testing::run_program;
using testing::ScratchDir;
namespace fs = std::filesystem;

// The JPEG tiles under `folder`, in path order.
std::vector<fs::path> jpeg_files(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(folder))
    if (entry.path().extension() == ".jpeg") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// The synthetic set with its tiles turned, in turn, into PNG, TIFF (LZW), WebP (lossless), BMP
// and left as JPEG, each file keeping its name (the content decides the format); then a damaged
// PNG and a pyramid TIFF added to one class.
TEST(Formats, AMixedFormatTileSetTrainsEvaluatesAndPredicts) {
  if (std::system("convert -version >/dev/null 2>&1") != 0) {
    ASSERT_FALSE(testing::packages_required()) << "no ImageMagick (convert): run.sh installs it";
    GTEST_SKIP() << "no ImageMagick (convert)";
  }
  ScratchDir dir;
  const fs::path data = dir / "data";
  fs::copy(testing::synth_data(), data, fs::copy_options::recursive);
  // Every fifth tile stays JPEG; the others become PNG, LZW TIFF, lossless WebP and BMP (under a
  // .bmp name), each converted in place by ImageMagick.
  const std::vector<fs::path> jpegs = jpeg_files(data);
  for (size_t n = 0; n < jpegs.size(); ++n) {
    const std::string f = jpegs[n].string();
    const std::vector<std::vector<std::string>> conversions = {{f, "PNG24:" + f},
                                                               {f, "-compress", "LZW", "TIFF:" + f},
                                                               {f, "-define", "webp:lossless=true", "WEBP:" + f},
                                                               {f, "BMP3:" + fs::path(f).replace_extension(".bmp").string()},
                                                               {}};
    const auto& args = conversions[n % 5];
    if (args.empty()) continue;
    ASSERT_EQ(run_program("convert", {args}).exit_code, 0) << f;
    if (n % 5 == 3) fs::remove(f);
  }
  const fs::path lung_n = data / "lung_colon_image_set/lung_image_sets/lung_n";
  std::ofstream(lung_n / "damaged.png") << "not a PNG at all";
  const std::vector<fs::path> lung_n_jpegs = jpeg_files(lung_n);
  ASSERT_FALSE(lung_n_jpegs.empty());
  ASSERT_EQ(run_program("convert", {{lung_n_jpegs.front().string(), "-resize", "256x256", "PTIF:" + (lung_n / "slide.tif").string()}})
                .exit_code,
            0);

  const fs::path run = dir / "run";
  const auto trained = run_histotrain("train --data " + data.string() + " --image-size 32 --batch-size 16 --epochs 1 " +
                                      "--threads 2 --cache-dir " + (dir / "cache").string() + " --out " + run.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("data: 200 images"), std::string::npos) << trained.err;
  EXPECT_NE(trained.err.find("skipped 2 image(s) that could not be decoded"), std::string::npos) << trained.err;

  const auto evaluated = run_histotrain("eval --checkpoint " + run.string() + " --data " + data.string() +
                                        " --cache-dir " + (dir / "cache").string() + " --json --quiet");
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  EXPECT_EQ(nlohmann::json::parse(evaluated.out)["images"], 200);

  const auto predicted = run_histotrain("predict --checkpoint " + run.string() + " --csv " +
                                        (dir / "p.csv").string() + " " +
                                        (data / "lung_colon_image_set/lung_image_sets/lung_n").string());
  ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  const std::string csv = testing::read_text(dir / "p.csv");
  EXPECT_NE(csv.find("pyramid"), std::string::npos) << csv;
  EXPECT_NE(csv.find(".bmp,"), std::string::npos) << csv;
}

// A manifest with a split column: training takes its train and val rows, leaves its test rows out,
// and eval --manifest takes exactly those. The groups come from its group column.
TEST(Formats, AManifestsSplitColumnIsTheSplitAndEvalTakesItsTestRows) {
  ScratchDir dir;
  // The manifest sits beside the tiles, in a copy of the synthetic set: paths are relative to it.
  const fs::path data = dir / "data";
  fs::copy(testing::synth_data(), data, fs::copy_options::recursive);
  const fs::path manifest = data / "manifest.csv";
  // label,path,group,split: each source group on one side, a fifth of them val and a fifth test.
  std::map<std::string, std::string> group_of;
  for (const auto& row : parse_csv(testing::read_text(data / "groups.csv"), "groups.csv"))
    if (row.line > 1) group_of[row.fields.at(0)] = row.fields.at(2);
  std::string rows = "label,path,group,split\n";
  for (const fs::path& f : jpeg_files(data)) {
    const std::string group = group_of.at(f.filename().string());
    const size_t h = std::hash<std::string>{}(group) % 5;
    rows += f.parent_path().filename().string() + "," + fs::relative(f, data).string() + "," + group + "," +
            (h == 0 ? "val" : h == 1 ? "test" : "train") + "\n";
  }
  std::ofstream(manifest) << rows;
  const std::string text = testing::read_text(manifest);
  const auto rows_of = [&](const std::string& split) {
    int64_t n = 0;
    for (size_t at = text.find("," + split + "\n"); at != std::string::npos; at = text.find("," + split + "\n", at + 1)) ++n;
    return n;
  };
  ASSERT_GT(rows_of("test"), 0);
  ASSERT_GT(rows_of("val"), 0);
  EXPECT_EQ(rows_of("train") + rows_of("val") + rows_of("test"), 200);

  const fs::path run = dir / "run";
  const auto trained = run_histotrain("train --manifest " + manifest.string() + " --image-size 32 --batch-size 16 " +
                                      "--epochs 1 --threads 2 --cache-dir " + (dir / "cache").string() + " --out " +
                                      run.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("split: " + std::to_string(rows_of("train")) + " training, " +
                             std::to_string(rows_of("val")) + " validation images (as the manifest's split column says; its " +
                             std::to_string(rows_of("test")) + " test images are left out"),
            std::string::npos)
      << trained.err;
  EXPECT_NE(trained.err.find("groups: from the manifest's group column"), std::string::npos) << trained.err;

  const auto evaluated = run_histotrain("eval --checkpoint " + run.string() + " --manifest " + manifest.string() +
                                        " --cache-dir " + (dir / "cache").string() + " --json --quiet");
  const auto all = run_histotrain("eval --checkpoint " + run.string() + " --manifest " + manifest.string() +
                                  " --manifest-split all --cache-dir " + (dir / "cache").string() + " --json --quiet");
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  EXPECT_EQ(nlohmann::json::parse(evaluated.out)["images"], rows_of("test"));
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(nlohmann::json::parse(all.out)["images"], 200);
}

// --val-data: a dataset that ships its own validation set in a second folder.
TEST(Formats, ValDataIsTheValidationSetAndDataAllTraining) {
  ScratchDir dir;
  const fs::path run = dir / "run";
  const auto trained = run_histotrain("train --data " + testing::synth_data() + " --val-data " +
                                      testing::shared_synthetic_dataset(8, 96, 11).string() +
                                      " --image-size 32 --batch-size 16 --epochs 1 --threads 2 --cache-dir " +
                                      (dir / "cache").string() + " --out " + run.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("split: 200 training, 40 validation images (validation: the images of --val-data"),
            std::string::npos)
      << trained.err;
  const auto summary = testing::read_json(run / "summary.json");
  EXPECT_EQ(summary["train_images"], 200);
  EXPECT_EQ(summary["val_images"], 40);
  const auto refused = run_histotrain("train --data " + testing::synth_data() + " --val-data " + testing::synth_data() +
                                      " --split random --out " + (dir / "r2").string());
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
}

}  // namespace
}  // namespace histotrain
