// The second round of hostile inputs (docs/security.md): every file a few bytes long that claims
// gigabytes or minutes is refused before the work, no special file blocks a read, nothing is
// written through a link or outside the run, names round-trip through every list, valid files
// decode, and every number is checked where it enters. Files are built here, at run time; limits
// are asserted from the child's own accounting (wait4), generously: gigabytes and minutes.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <set>

#include "cli_harness.h"
#include "test_util.h"
#include "util/csv.h"
#include "util/files.h"

namespace histotrain {
namespace {

namespace fs = std::filesystem;
using testing::Finished;
using testing::run_cli;
using testing::ScratchDir;

constexpr long kGenerousRssMib = 1024;  // a refusal costs tens of MiB; the attacks cost gigabytes
constexpr double kGenerousSeconds = 60;

// One small trained run, shared read-only by the tests of this file.
const fs::path& trained_run() {
  static const fs::path run = [] {
    static ScratchDir dir;
    const fs::path out = dir / "run";
    const Finished trained = run_cli({"train", "--data", testing::synth_data(), "--arch", "resnet10", "--image-size",
                                      "32", "--batch-size", "16", "--epochs", "1", "--threads", "2", "--bootstrap",
                                      "0", "--quiet", "--out", out.string()});
    EXPECT_EQ(trained.exit_code, 0) << trained.err;
    return out;
  }();
  return run;
}

fs::path copy_of_run(const ScratchDir& dir) {
  fs::copy(trained_run(), dir / "run", fs::copy_options::recursive);
  return dir / "run";
}

void write_bytes(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

void expect_refused_cheaply(const Finished& f, const std::string& what) {
  EXPECT_FALSE(f.timed_out) << what;
  EXPECT_LT(f.peak_rss_mib, kGenerousRssMib) << what << ": peak RSS";
  EXPECT_LT(f.cpu_seconds, kGenerousSeconds) << what << ": CPU seconds";
}

// 1. Memory: a PNG header claiming an extreme width, a sparse giant in place of the weights, a
// sparse giant --init or groups file.
TEST(Bounded, HeadersAndFileSizesAreJudgedBeforeAnythingIsAllocated) {
  ScratchDir dir;
  for (const auto& [name, width, height] : {std::tuple<const char*, uint32_t, uint32_t>{"wide.png", 0x7fffff00u, 1u},
                                            {"tall.png", 1u, 0x7fffff00u},
                                            {"square.png", 60000u, 60000u}}) {
    // Signature, then IHDR: 13 bytes of width, height, depth 8, colour 2 (RGB), ...; no pixels.
    const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + "IHDR" + be32(width) + be32(height) +
                            std::string("\x08\x02\x00\x00\x00", 5) + be32(0) + be32(0) + "IEND" + be32(0);
    write_bytes(dir / name, png);
    const Finished predicted = run_cli({"predict", "--checkpoint", trained_run().string(), (dir / name).string()});
    EXPECT_EQ(predicted.exit_code, 1) << predicted.err;
    EXPECT_NE(predicted.out.find("more than --max-image-pixels"), std::string::npos) << predicted.out;
    expect_refused_cheaply(predicted, name);
  }
  const fs::path run = copy_of_run(dir);
  fs::resize_file(run / "model.safetensors", uint64_t{5} << 30);  // sparse: no disk, 5 GB claimed
  const Finished eval = run_cli({"eval", "--checkpoint", run.string(), "--data", testing::synth_data(), "--quiet"});
  EXPECT_EQ(eval.exit_code, 1);
  EXPECT_NE(eval.err.find("too large"), std::string::npos) << eval.err;
  expect_refused_cheaply(eval, "sparse model.safetensors");
  write_bytes(dir / "init.pth", "");
  fs::resize_file(dir / "init.pth", uint64_t{5} << 30);
  const Finished init = run_cli({"train", "--data", testing::synth_data(), "--init", (dir / "init.pth").string(),
                                 "--epochs", "1", "--out", (dir / "from-init").string()});
  EXPECT_EQ(init.exit_code, 1);
  EXPECT_NE(init.err.find("too large"), std::string::npos) << init.err;
  expect_refused_cheaply(init, "sparse --init");
  write_bytes(dir / "groups.csv", "");
  fs::resize_file(dir / "groups.csv", uint64_t{5} << 30);
  const Finished groups = run_cli({"train", "--data", testing::synth_data(), "--groups", (dir / "groups.csv").string(),
                                   "--epochs", "1", "--out", (dir / "g").string()});
  EXPECT_EQ(groups.exit_code, 1);
  expect_refused_cheaply(groups, "sparse groups CSV");
}

// 2. Time: a progressive JPEG of thousands of scans is refused before its scans are decoded.
TEST(Bounded, AProgressiveJpegOfManyScansIsRefusedAtOnce) {
  if (std::system("convert -version >/dev/null 2>&1") != 0) {
    ASSERT_FALSE(testing::packages_required()) << "no ImageMagick (convert): run.sh installs it";
    GTEST_SKIP() << "no ImageMagick";
  }
  ScratchDir dir;
  const fs::path base = dir / "progressive.jpeg";
  ASSERT_EQ(std::system(("convert -size 512x512 plasma:red-blue -interlace Plane -quality 90 " + base.string()).c_str()), 0);
  const std::string bytes = testing::read_text(base);
  // Its shortest scan (a refinement of a few bytes) repeated until the file holds thousands.
  std::vector<size_t> starts;
  for (size_t at = bytes.find("\xFF\xDA"); at != std::string::npos; at = bytes.find("\xFF\xDA", at + 2)) starts.push_back(at);
  const size_t end = bytes.rfind("\xFF\xD9");
  ASSERT_GE(starts.size(), 2u) << "not a progressive JPEG";
  std::string scan;
  for (size_t k = 0; k < starts.size(); ++k) {
    const std::string candidate = bytes.substr(starts[k], (k + 1 < starts.size() ? starts[k + 1] : end) - starts[k]);
    if (scan.empty() || candidate.size() < scan.size()) scan = candidate;
  }
  std::string many = bytes.substr(0, end);
  for (int k = 0; k < 3000; ++k) many += scan;
  write_bytes(dir / "scans.jpeg", many + "\xFF\xD9");
  const Finished predicted = run_cli({"predict", "--checkpoint", trained_run().string(), (dir / "scans.jpeg").string()});
  EXPECT_EQ(predicted.exit_code, 1);
  EXPECT_NE(predicted.out.find("progressive JPEG of"), std::string::npos) << predicted.out;
  expect_refused_cheaply(predicted, "many scans");
  EXPECT_LT(predicted.cpu_seconds, 10);
  const Finished plain = run_cli({"predict", "--checkpoint", trained_run().string(), base.string()});
  EXPECT_EQ(plain.exit_code, 0) << "an ordinary progressive JPEG decodes: " << plain.out;
}

// 3. A FIFO in place of a checkpoint file: eval, predict and resume refuse it instead of waiting
// for a writer that never comes.
TEST(Bounded, AFifoInPlaceOfACheckpointFileBlocksNothing) {
  ScratchDir dir;
  for (const char* file : {"model.safetensors", "train_state.safetensors", "checkpoint.json"}) {
    ScratchDir case_dir;
    const fs::path run = copy_of_run(case_dir);
    fs::remove(run / file);
    ASSERT_EQ(::mkfifo((run / file).c_str(), 0644), 0);
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"eval", "--checkpoint", run.string(), "--data", testing::synth_data(), "--quiet"},
          {"predict", "--checkpoint", run.string(), testing::synth_data()},
          {"train", "--resume", run.string(), "--epochs", "2", "--quiet"}}) {
      // eval and predict read the weights; a resume reads the state (and writes new weights).
      if ((std::string(file) == "train_state.safetensors") != (args[0] == "train") &&
          std::string(file) != "checkpoint.json")
        continue;
      const Finished f = run_cli(args, 60);
      EXPECT_FALSE(f.timed_out) << args[0] << " with a FIFO as " << file;
      EXPECT_EQ(f.exit_code, 1) << args[0] << " " << file << ": " << f.err;
    }
  }
}

// 4. Writes: a link where the run appends its log, a link where eval draws a plot, a study
// whose plots folder is a link, a folder of run-like files, --out inside the data.
TEST(Bounded, NothingIsWrittenThroughALinkOrOutsideTheRun) {
  ScratchDir dir;
  const fs::path outside = dir / "outside.txt";
  write_bytes(outside, "precious\n");
  const fs::path run = copy_of_run(dir);
  fs::remove(run / "metrics.jsonl");
  fs::create_symlink(outside, run / "metrics.jsonl");
  const Finished resumed = run_cli({"train", "--resume", run.string(), "--epochs", "2", "--quiet"});
  EXPECT_NE(resumed.exit_code, 0);
  EXPECT_NE(resumed.err.find("symbolic link"), std::string::npos) << resumed.err;
  EXPECT_EQ(testing::read_text(outside), "precious\n");

  const fs::path report = dir / "report";
  fs::create_directories(report);
  for (const char* png : {"roc.png", "confusion.png", "reliability.png"}) fs::create_symlink(outside, report / png);
  const Finished evaluated = run_cli({"eval", "--checkpoint", trained_run().string(), "--data", testing::synth_data(),
                                      "--groups", testing::synth_data() + "/groups.csv", "--bootstrap", "20",
                                      "--report", report.string(), "--quiet"});
  EXPECT_EQ(testing::read_text(outside), "precious\n") << evaluated.err;

  const fs::path stray = dir / "stray";
  fs::create_directories(stray);
  write_bytes(stray / "model.safetensors", "someone else's");
  const Finished into_stray = run_cli({"train", "--data", testing::synth_data(), "--epochs", "1", "--out", stray.string()});
  EXPECT_EQ(into_stray.exit_code, 1);
  EXPECT_NE(into_stray.err.find("but no run"), std::string::npos) << into_stray.err;
  EXPECT_EQ(testing::read_text(stray / "model.safetensors"), "someone else's");

  fs::copy(testing::synth_data(), dir / "data", fs::copy_options::recursive);
  for (const fs::path& out : {dir / "data", dir / "data" / "lung_colon_image_set" / "lung_image_sets" / "lung_n"}) {
    const Finished inside = run_cli({"train", "--data", (dir / "data").string(), "--epochs", "1", "--out", out.string()});
    EXPECT_EQ(inside.exit_code, 2) << out;
    EXPECT_NE(inside.err.find("inside the data folder"), std::string::npos) << inside.err;
  }
}

// 5. Names with a line break, a carriage return or a leading '#' stay in the split they were
// put in: the lists histotrain writes read back as themselves.
TEST(Bounded, ListsRoundTripEveryName) {
  ScratchDir dir;
  const fs::path data = dir / "data";
  fs::copy(testing::synth_data(), data, fs::copy_options::recursive);
  const fs::path lung_n = data / "lung_colon_image_set" / "lung_image_sets" / "lung_n";
  const std::vector<std::string> odd = {"line\nbreak.jpeg", "carriage\rreturn.jpeg", "#hash.jpeg", " spaced .jpeg"};
  for (size_t i = 0; i < odd.size(); ++i)
    fs::rename(lung_n / ("lungn" + std::to_string(i + 1) + ".jpeg"), lung_n / odd[i]);
  const std::string list = list_file_text({(lung_n / odd[0]).string(), (lung_n / odd[1]).string(),
                                           (lung_n / odd[2]).string(), (lung_n / odd[3]).string(), "/nowhere/x.jpeg"});
  write_bytes(dir / "val.csv", list);
  const fs::path run = dir / "run";
  const Finished trained = run_cli({"train", "--data", data.string(), "--val-images", (dir / "val.csv").string(),
                                    "--image-size", "32", "--epochs", "1", "--threads", "2", "--bootstrap", "0",
                                    "--quiet", "--out", run.string()});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("match no tile"), std::string::npos) << "the unmatched name is reported:\n" << trained.err;
  const auto val = read_list_file(run / "val_images.txt"), train = read_list_file(run / "train_images.txt");
  EXPECT_EQ(val.size(), 4u);
  std::set<std::string> val_names, train_set(train.begin(), train.end());
  for (const auto& path : val) val_names.insert(fs::path(path).filename().string());
  EXPECT_EQ(val_names, std::set<std::string>(odd.begin(), odd.end()));
  EXPECT_EQ(train.size() + val.size(), 200u) << "every image once";
  for (const auto& path : val) EXPECT_EQ(train_set.count(path), 0u) << "validation image trained on: " << path;
}

// 6. Valid files decode: a top-down BMP (negative height) and an uncompressed TIFF of 16 x 16 tiles.
TEST(Bounded, TopDownBitmapsAndSmallTiledTiffsDecode) {
  ScratchDir dir;
  // 2 x 2, 24-bit, top-down: rows stored top first, each padded to 8 bytes.
  std::string bmp = "BM" + std::string(4, '\0') + std::string(4, '\0') + std::string("\x36\0\0\0", 4);
  const auto le32 = [](int32_t v) { std::string s(4, '\0'); std::memcpy(s.data(), &v, 4); return s; };
  bmp += le32(40) + le32(2) + le32(-2) + std::string("\x01\0\x18\0", 4) + le32(0) + le32(16) + le32(2835) + le32(2835) +
         le32(0) + le32(0);
  // Top row: red, green (BGR order); bottom row: blue, white.
  bmp += std::string("\0\0\xff\0\xff\0\0\0", 8) + std::string("\xff\0\0\xff\xff\xff\0\0", 8);
  write_bytes(dir / "topdown.bmp", bmp);
  const Finished bitmap = run_cli({"predict", "--checkpoint", trained_run().string(), (dir / "topdown.bmp").string()});
  EXPECT_EQ(bitmap.exit_code, 0) << bitmap.out << bitmap.err;
  if (std::system("convert -version >/dev/null 2>&1") == 0) {
    const std::string tile = testing::synth_data() + "/lung_colon_image_set/lung_image_sets/lung_n/lungn1.jpeg";
    ASSERT_EQ(std::system(("convert " + tile + " -define tiff:tile-geometry=16x16 -compress none " +
                           (dir / "tiled.tif").string()).c_str()),
              0);
    const Finished tiff = run_cli({"predict", "--checkpoint", trained_run().string(), (dir / "tiled.tif").string()});
    EXPECT_EQ(tiff.exit_code, 0) << tiff.out << tiff.err;
  }
}

// 7. Numbers are checked where they enter, in every command; deep JSON is refused, not recursed.
TEST(Bounded, EveryNumberIsCheckedAndDeepJsonIsRefused) {
  ScratchDir dir;
  const std::string data = testing::synth_data();
  const std::vector<std::vector<std::string>> usage_errors = {
      {"train", "--data", data, "--val-fraction", ""},
      {"train", "--data", data, "--epochs", ""},
      {"train", "--data", data, "--seed", "-1"},
      {"train", "--data", data, "--max-steps", "99999999999999999999"},
      {"train", "--data", data, "--max-steps", "9000000000000000000"},
      {"train", "--data", data, "--lr", "1e308"},
      {"train", "--data", data, "--stage-cut", "x"},
      {"train", "--data", data, "--pipeline-stages", "2", "--stage-cut", "99"},
      {"eval", "--checkpoint", trained_run().string(), "--data", data, "--seed", "-1"},
      {"eval", "--checkpoint", trained_run().string(), "--data", data, "--bootstrap", ""},
      {"launch", "-n", "100000", "--", "train", "--data", data},
      {"launch", "-n", "2", "--grace", "nan", "--", "train", "--data", data},
      {"launch", "-n", "2", "--grace", "inf", "--", "train", "--data", data},
      {"launch", "-n", "2", "--grace", "-1", "--", "train", "--data", data},
      {"launch", "-n", "2", "--threads-per-rank", "-1", "--", "train", "--data", data},
      {"launch", "-n", "2", "--threads-per-rank", "100000", "--", "train", "--data", data},
      {"launch", "-n", "2", "--port", "-5", "--", "train", "--data", data}};
  for (const auto& args : usage_errors) {
    const Finished f = run_cli(args, 30);
    std::string line;
    for (const auto& a : args) line += a + " ";
    EXPECT_EQ(f.exit_code, 2) << line << "\n" << f.err;
    EXPECT_LT(f.seconds, 20) << line;
    EXPECT_EQ(f.err.find("data: "), std::string::npos) << line << ": refused before the data is read";
  }
  const Finished lr = run_cli({"train", "--data", data, "--lr", "1e308"});
  EXPECT_NE(lr.err.find("(0, 100)"), std::string::npos) << lr.err;
  const Finished cut = run_cli({"train", "--data", data, "--pipeline-stages", "2", "--stage-cut", "99"});
  EXPECT_NE(cut.err.find("--stage-cut"), std::string::npos) << cut.err;

  // Plans that ask for a million configurations or a billion epochs.
  nlohmann::json plan = {{"configs", nlohmann::json::array()}, {"accuracy_epochs", 1000000000}};
  plan["configs"].push_back({{"name", "serial"}});
  write_bytes(dir / "epochs.json", plan.dump());
  plan["accuracy_epochs"] = 5;
  for (int i = 0; i < 300; ++i) plan["configs"].push_back({{"name", "c" + std::to_string(i)}});
  write_bytes(dir / "configs.json", plan.dump());
  for (const char* name : {"epochs.json", "configs.json"}) {
    const Finished f = run_cli({"bench", "--plan", (dir / name).string(), "--print-plan"});
    EXPECT_EQ(f.exit_code, 2) << name << f.err;
    EXPECT_NE(f.err.find(name), std::string::npos) << "the error names the file: " << f.err;
  }
  // A study's results.json nested 10^5 deep: report refuses it by name, no stack overflow.
  fs::create_directories(dir / "study");
  write_bytes(dir / "study" / "results.json", "{\"study\": " + std::string(100000, '[') + std::string(100000, ']') + "}");
  const Finished report = run_cli({"report", (dir / "study").string()});
  EXPECT_EQ(report.exit_code, 1) << report.err;
  EXPECT_NE(report.err.find("nests deeper"), std::string::npos) << report.err;
  EXPECT_NE(report.err.find("results.json"), std::string::npos) << report.err;
}

// 9. Messages that help: a manifest with a byte-order mark reads (and says so), one with CR-only
// line ends says that; names are escaped on the terminal and in report.md.
TEST(Bounded, MessagesNameWhatIsWrongAndEscapeNames) {
  ScratchDir dir;
  const std::string tile = testing::synth_data() + "/lung_colon_image_set/lung_image_sets/lung_n/lungn1.jpeg";
  write_bytes(dir / "bom.csv", "\xEF\xBB\xBFpath,label\n" + tile + ",lung_n\n");
  const Finished bom = run_cli({"eval", "--checkpoint", trained_run().string(), "--manifest", (dir / "bom.csv").string(),
                                "--bootstrap", "0", "--quiet", "--json"});
  EXPECT_EQ(bom.exit_code, 0) << bom.err;
  EXPECT_NE(bom.err.find("byte-order mark"), std::string::npos) << bom.err;
  write_bytes(dir / "cr.csv", "path,label\r" + tile + ",lung_n\r");
  const Finished cr = run_cli({"eval", "--checkpoint", trained_run().string(), "--manifest", (dir / "cr.csv").string()});
  EXPECT_EQ(cr.exit_code, 1);
  EXPECT_NE(cr.err.find("CR alone"), std::string::npos) << cr.err;

  const fs::path odd = dir / "a\x1b[31mred.jpeg";
  fs::copy_file(tile, odd);
  const Finished predicted = run_cli({"predict", "--checkpoint", trained_run().string(), odd.string()});
  EXPECT_EQ(predicted.out.find('\x1b'), std::string::npos) << "a control character reached the terminal";
  EXPECT_NE(predicted.out.find("\\x1b[31mred"), std::string::npos) << predicted.out;
}

}  // namespace
}  // namespace histotrain
