// A tile set in several formats at once, as a user's own data may be: the histotrain binary scans,
// caches, trains, evaluates and predicts on it, counting the damaged files and refusing a pyramid.
// The files are converted from the synthetic set by ImageMagick at run time.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "test_util.h"

namespace histotrain {
namespace {

using testing::run_histotrain;
using testing::run_script;
using testing::ScratchDir;
namespace fs = std::filesystem;

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
  const auto converted = run_script(
      "cd " + data.string() + "\n"
      "n=0\n"
      "find . -name '*.jpeg' | sort | while read -r f; do\n"
      "  case $((n % 5)) in\n"
      "    0) convert \"$f\" \"PNG24:$f\" ;;\n"
      "    1) convert \"$f\" -compress LZW \"TIFF:$f\" ;;\n"
      "    2) convert \"$f\" -define webp:lossless=true \"WEBP:$f\" ;;\n"
      "    3) convert \"$f\" \"BMP3:${f%.jpeg}.bmp\" && rm \"$f\" ;;\n"
      "  esac\n"
      "  n=$((n + 1))\n"
      "done\n"
      "d=lung_colon_image_set/lung_image_sets/lung_n\n"
      "printf 'not a PNG at all' > $d/damaged.png\n"
      "convert \"$(ls $d/*.jpeg | head -1)\" -resize 256x256 \"PTIF:$d/slide.tif\"\n");
  ASSERT_EQ(converted.exit_code, 0) << converted.err;

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
  const auto written = run_script(
      "cd " + data.string() + "\n"
      "echo 'label,path,group,split' > manifest.csv\n"
      "find . -name '*.jpeg' | sort | while read -r f; do\n"
      "  label=$(basename \"$(dirname \"$f\")\")\n"
      "  group=$(grep \"^$(basename \"$f\"),\" groups.csv | cut -d, -f3)\n"
      "  h=$(printf '%s' \"$group\" | cksum | cut -d' ' -f1)\n"
      "  case $((h % 5)) in 0) s=val ;; 1) s=test ;; *) s=train ;; esac\n"
      "  echo \"$label,${f#./},$group,$s\"\n"
      "done >> manifest.csv\n");
  ASSERT_EQ(written.exit_code, 0) << written.err;
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
