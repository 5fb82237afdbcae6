// Files that come from someone else, run through the histotrain binary as a user would: none of
// them may run code, overwrite another run, or take the machine's memory (docs/security.md).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/jpeg.h"
#include "model/resnet.h"
#include "model/safetensors.h"
#include "cli_harness.h"
#include "test_util.h"
#include "util/csv.h"
#include "util/files.h"

namespace histotrain {
namespace {

using testing::Finished;
using testing::read_json;
using testing::Running;
using testing::run_histotrain;
using testing::ScratchDir;

using testing::synth_data;

// One epoch on 32 px tiles: a real run folder in a few seconds.
std::string quick_train(const std::string& data, const fs::path& out, int epochs = 1, int size = 32) {
  return "train --data " + data + " --groups " + data + "/groups.csv --image-size " + std::to_string(size) +
         " --batch-size 16 --epochs " + std::to_string(epochs) + " --threads 2 --quiet --out " + out.string();
}

// The same without --groups and --threads, for tests that give those.
std::string bare_train(const std::string& data, const fs::path& out) {
  return "train --data " + data + " --image-size 32 --batch-size 16 --epochs 1 --quiet --out " + out.string();
}

// A trained run folder, made once and copied by each test that alters it.
const fs::path& trained_run() {
  static ScratchDir dir;
  static const fs::path run = [] {
    const fs::path out = dir / "run";
    const auto result = run_histotrain(quick_train(synth_data(), out));
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return out;
  }();
  return run;
}

fs::path copy_of_trained_run(const ScratchDir& dir) {
  const fs::path copy = dir / "copy";
  fs::copy(trained_run(), copy, fs::copy_options::recursive);
  return copy;
}

// Rewrites checkpoint.json's checksum for `file` to match the file as it is now: what someone
// who hands over an altered checkpoint would do.
void vouch_for(const fs::path& run, const std::string& file) {
  nlohmann::json meta = read_json(run / "checkpoint.json");
  const std::string bytes = read_text_file(run / file);
  Fnv1a hash;
  hash.add(bytes.data(), bytes.size());
  meta["checksums"][file] = hex64(hash.value);
  write_file_atomically(run / "checkpoint.json", meta.dump(2));
}

std::string eval_args(const fs::path& run) { return "eval --checkpoint " + run.string() + " --data " + synth_data() + " --quiet"; }

TEST(Hostile, ATorchScriptCheckpointRunsNoCodeUnlessTrusted) {
  const std::string python = testing::torchvision_python();
  if (python.empty()) {
    ASSERT_FALSE(testing::packages_required()) << "no python3 with torch: run.sh installs it";
    GTEST_SKIP() << "no python3 with torch to write the archive";
  }
  ScratchDir dir;
  const fs::path run = copy_of_trained_run(dir);
  fs::remove(run / "model.safetensors");  // only model.pt: a checkpoint from an older version, or a forged one
  ASSERT_EQ(testing::run_program(python, {{HISTOTRAIN_SOURCE_DIR "/tests/parity/torchscript_payload.py",
                                           (run / "model.pt").string()}})
                .exit_code,
            0);
  vouch_for(run, "model.pt");
  for (const std::string command : {"eval", "predict"}) {
    const std::string args = command == "eval" ? eval_args(run)
                                               : "predict --checkpoint " + run.string() + " " + synth_data();
    const auto refused = run_histotrain(args);
    EXPECT_EQ(refused.exit_code, 1) << command;
    EXPECT_EQ(refused.out.find("PAYLOAD"), std::string::npos) << command << ": the archive's code ran";
    EXPECT_NE(refused.err.find("--trust-checkpoint"), std::string::npos) << refused.err;
  }
  // Told to trust it, histotrain loads it as LibTorch does: the code runs (which is why the
  // default refuses), then the archive is found to hold no ResNet.
  const auto trusted = run_histotrain(eval_args(run) + " --trust-checkpoint");
  EXPECT_NE(trusted.out.find("PAYLOAD RAN WHILE LOADING"), std::string::npos) << trusted.out << trusted.err;
  EXPECT_EQ(trusted.exit_code, 1);
}

TEST(Hostile, ACheckpointWithoutChecksumsOrOfAnotherShapeIsRefused) {
  ScratchDir dir;
  const fs::path run = copy_of_trained_run(dir);
  ASSERT_EQ(run_histotrain(eval_args(run)).exit_code, 0);

  nlohmann::json meta = read_json(run / "checkpoint.json");
  const nlohmann::json original = meta;
  meta.erase("checksums");
  write_file_atomically(run / "checkpoint.json", meta.dump(2));
  auto refused = run_histotrain(eval_args(run));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("no checksum"), std::string::npos) << refused.err;
  refused = run_histotrain("train --resume " + run.string() + " --epochs 2 --quiet");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("no checksum"), std::string::npos) << refused.err;
  write_file_atomically(run / "checkpoint.json", original.dump(2));

  // A 1000-class head where the checkpoint says 5 classes: named, nothing read past a buffer.
  ResNet thousand("resnet18", 1000);
  const std::string bytes = safetensors_bytes(module_tensors(*thousand));
  testing::write_bytes(run / "model.safetensors", std::vector<uint8_t>(bytes.begin(), bytes.end()));
  vouch_for(run, "model.safetensors");
  refused = run_histotrain("predict --checkpoint " + run.string() + " " + synth_data());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("'fc.weight' has shape [1000, 512]"), std::string::npos) << refused.err;

  // checkpoint.json fields edited to nonsense: an error naming the field, not a JSON exception.
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"arch", "resnet18; rm -rf ~"}, {"classes", nlohmann::json::array()}, {"image_size", 1 << 30}, {"step", -1}}) {
    nlohmann::json edited = original;
    edited[key] = value;
    write_file_atomically(run / "checkpoint.json", edited.dump(2));
    refused = run_histotrain(eval_args(run));
    EXPECT_EQ(refused.exit_code, 1) << key;
    EXPECT_NE(refused.err.find("'" + key + "'"), std::string::npos) << key << ": " << refused.err;
  }
}


// --out never names another run: not for a new run, not for --resume into a different folder.
TEST(Hostile, ResumeNeverWritesIntoAnotherRun) {
  ScratchDir dir;
  const fs::path a = copy_of_trained_run(dir), b = dir / "b";
  fs::copy(a, b, fs::copy_options::recursive);
  const std::string before = read_text_file(b / "checkpoint.json");
  const auto refused = run_histotrain("train --resume " + a.string() + " --out " + b.string() + " --epochs 2 --quiet");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("already holds another run"), std::string::npos) << refused.err;
  EXPECT_EQ(read_text_file(b / "checkpoint.json"), before);
  const auto fresh = run_histotrain(quick_train(synth_data(), b));
  EXPECT_EQ(fresh.exit_code, 1);
  EXPECT_NE(fresh.err.find("already holds a run"), std::string::npos) << fresh.err;
  // Into an empty folder, and into itself, a resume goes on.
  EXPECT_EQ(run_histotrain("train --resume " + a.string() + " --out " + (dir / "empty").string() + " --epochs 2 --quiet")
                .exit_code,
            0);
  EXPECT_EQ(run_histotrain("train --resume " + a.string() + " --epochs 2 --quiet").exit_code, 0);
}

// Two processes writing one run folder: the second is refused while the first holds it.
TEST(Hostile, TwoTrainingsIntoOneFolderDoNotInterleave) {
  ScratchDir dir;
  const std::string data = synth_data(), out = (dir / "run").string();
  Running first(HISTOTRAIN_EXE, {testing::words(quick_train(data, out, 3))});
  ASSERT_TRUE(testing::wait_until([&] {
    std::error_code error;
    return fs::file_size(fs::path(out) / ".histotrain.lock", error) > 0 && !error;
  }, 60)) << first.err_so_far();
  const Finished second = testing::run_cli(testing::words(quick_train(data, out, 1, 48)));
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_NE(second.err.find("is being written by another histotrain process (pid"), std::string::npos) << second.err;
  const Finished ended = first.finish();
  EXPECT_EQ(ended.exit_code, 0) << ended.err;
  EXPECT_EQ(read_json(fs::path(out) / "checkpoint.json")["epoch"], 3);
  EXPECT_EQ(read_json(fs::path(out) / "checkpoint.json")["image_size"], 32) << "the first run's files only";
}

TEST(Hostile, SynthDoesNotOverwriteATileSetUnlessAsked) {
  ScratchDir dir;
  const fs::path out = dir / "tiles";
  const std::string synth = "synth --per-class 2 --size 32 --quiet --out " + out.string();
  ASSERT_EQ(run_histotrain(synth).exit_code, 0);
  const fs::path tile = out / "lung_colon_image_set/lung_image_sets/lung_n/lungn1.jpeg";
  testing::write_bytes(tile, {'m', 'i', 'n', 'e'});
  const auto refused = run_histotrain(synth + " --seed 5");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("--overwrite"), std::string::npos) << refused.err;
  EXPECT_EQ(read_text_file(tile), "mine");
  EXPECT_EQ(run_histotrain(synth + " --overwrite").exit_code, 0);
  EXPECT_NE(read_text_file(tile), "mine");
}

TEST(Hostile, OutputsThatAreLinksOrDevicesAreRefusedNotReplaced) {
  ScratchDir dir;
  const fs::path run = copy_of_trained_run(dir);
  const std::string tile = synth_data() + "/lung_colon_image_set/lung_image_sets/lung_n/lungn1.jpeg";
  testing::write_bytes(dir / "target.csv", {'k', 'e', 'e', 'p'});
  fs::create_symlink(dir / "target.csv", dir / "link.csv");
  auto refused = run_histotrain("predict --checkpoint " + run.string() + " --csv " + (dir / "link.csv").string() + " " + tile);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("symbolic link"), std::string::npos) << refused.err;
  EXPECT_TRUE(fs::is_symlink(dir / "link.csv"));
  EXPECT_EQ(read_text_file(dir / "target.csv"), "keep");
  // A FIFO, and a device node (made here, not the machine's own /dev/null, in case of a bug).
  ASSERT_EQ(::mkfifo((dir / "fifo.csv").c_str(), 0644), 0);
  ::mknod((dir / "null.csv").c_str(), S_IFCHR | 0644, makedev(1, 3));  // needs root; skipped below without
  for (const char* name : {"fifo.csv", "null.csv"}) {
    if (!fs::exists(dir / name)) continue;  // mknod needs root
    const auto type = fs::symlink_status(dir / name).type();
    refused = run_histotrain("predict --checkpoint " + run.string() + " --csv " + (dir / name).string() + " " + tile);
    EXPECT_EQ(refused.exit_code, 1) << name;
    EXPECT_EQ(fs::symlink_status(dir / name).type(), type) << name << " was replaced";
  }
}

// Endless and enormous inputs are refused by their kind and size, not read until memory runs out.
TEST(Hostile, EndlessListsAndRunawayFlagsAreRefusedAtOnce) {
  ScratchDir dir;
  const std::string data = synth_data();
  for (const std::string flag : {"--groups /dev/zero", "--val-images /dev/zero", "--groups /dev/stdin"}) {
    const auto refused = run_histotrain(bare_train(data, dir / "r") + " " + flag + " </dev/zero");
    EXPECT_EQ(refused.exit_code, 1) << flag;
    EXPECT_NE(refused.err.find("not a regular file"), std::string::npos) << flag << ": " << refused.err;
  }
  std::string long_line(100 << 10, 'a');
  testing::write_bytes(dir / "long.txt", std::vector<uint8_t>(long_line.begin(), long_line.end()));
  auto refused = run_histotrain(bare_train(data, dir / "r") + " --val-images " + (dir / "long.txt").string());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("line 1"), std::string::npos) << refused.err;
  for (const std::string flag : {"--threads 100000", "--workers 100000"}) {
    refused = run_histotrain(bare_train(data, dir / "r") + " " + flag);
    EXPECT_EQ(refused.exit_code, 2) << flag;
    EXPECT_NE(refused.err.find("more than this machine can use"), std::string::npos) << refused.err;
  }
  for (const std::string flag : {"--lr nan", "--lr inf", "--weight-decay inf", "--warmup-epochs inf", "--ema nan",
                                 "--val-fraction nan", "--label-smoothing -inf", "--bucket-mb nan"}) {
    refused = run_histotrain(bare_train(data, dir / "r") + " " + flag);
    EXPECT_EQ(refused.exit_code, 2) << flag << ": " << refused.err;
  }
  EXPECT_FALSE(fs::exists(dir / "r/checkpoint.json"));
}

// A JPEG of a few hundred bytes whose header claims 60000 x 60000 pixels: skipped as damaged,
// before its 10.8 GB of pixels are allocated.
TEST(Hostile, AHeaderOnlyDecompressionBombIsSkipped) {
  ScratchDir dir;
  RgbImage small(16, 16);
  std::vector<uint8_t> bomb = encode_jpeg(small);
  for (size_t i = 0; i + 8 < bomb.size(); ++i)
    if (bomb[i] == 0xFF && (bomb[i + 1] == 0xC0 || bomb[i + 1] == 0xC2)) {  // SOF: height, width at +5, +7
      bomb[i + 5] = bomb[i + 7] = 0xEA;
      bomb[i + 6] = bomb[i + 8] = 0x60;
      break;
    }
  const DecodeResult decoded = decode_jpeg(bomb.data(), bomb.size(), 64);
  EXPECT_FALSE(decoded.ok);
  EXPECT_NE(decoded.error.find("60000 x 60000"), std::string::npos) << decoded.error;
  // In a data folder it is counted among the damaged files, and training goes on.
  const fs::path data = dir / "data";
  fs::copy(synth_data(), data, fs::copy_options::recursive);
  testing::write_bytes(data / "lung_colon_image_set/lung_image_sets/lung_n/bomb.jpeg", bomb);
  const auto trained = run_histotrain("train --data " + data.string() + " --image-size 32 --batch-size 16 --epochs 1 " +
                                      "--threads 2 --quiet --max-steps 2 --cache-dir " + (dir / "cache").string() +
                                      " --out " + (dir / "run").string());
  EXPECT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("60000 x 60000"), std::string::npos) << trained.err;
  // A limit below a real tile's size skips every tile: the limit is the one given.
  const auto limited = run_histotrain("eval --checkpoint " + trained_run().string() + " --data " + synth_data() +
                                      " --quiet --max-image-pixels 100 --cache-dir " + (dir / "cache2").string());
  EXPECT_EQ(limited.exit_code, 1) << limited.err;
}

// File and folder names hold any byte but '/' and NUL. Whatever they hold, runs, their reports
// and the cached groups keep working, and CSV output reads back as the names themselves.
TEST(Hostile, NamesWithEveryKindOfByteRoundTrip) {
  ScratchDir dir;
  const fs::path data = dir / "data";
  fs::copy(synth_data(), data, fs::copy_options::recursive);
  const fs::path lung_n = data / "lung_colon_image_set/lung_image_sets/lung_n";
  const std::vector<std::string> names = {"a,b.jpeg", "q\"uote.jpeg", "new\nline.jpeg", "trail .jpeg", " lead.jpeg",
                                          "bad\xff\xfe.jpeg", "$(touch PWNED).jpeg", "tab\there;x.jpeg", "back\\slash.jpeg",
                                          "cr\r.jpeg"};
  for (size_t i = 0; i < names.size(); ++i) fs::rename(lung_n / ("lungn" + std::to_string(i + 1) + ".jpeg"), lung_n / names[i]);
  const std::string args = "train --data " + data.string() + " --image-size 32 --batch-size 16 --epochs 1 --threads 2 " +
                           "--quiet --cache-dir " + (dir / "cache").string() + " --out ";
  const auto first = run_histotrain(args + (dir / "one").string());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto second = run_histotrain(args + (dir / "two").string());  // reads the groups it cached
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.err.find("PWNED"), std::string::npos);
  EXPECT_NO_THROW(read_json(dir / "two/summary.json"));
  EXPECT_FALSE(fs::exists(dir.path() / "PWNED"));

  std::string files;
  for (const auto& name : names) files += " '" + (lung_n / name).string() + "'";
  // The names go to predict through a shell here only because the test harness uses one; the
  // single quotes hold every byte above but none of these names has a single quote.
  const auto predicted = run_histotrain("predict --checkpoint " + (dir / "one").string() + " --csv " +
                                        (dir / "p.csv").string() + files);
  ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  const auto records = parse_csv(read_text_file(dir / "p.csv"), "p.csv");
  ASSERT_EQ(records.size(), names.size() + 1);
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(records[i + 1].fields[0], (lung_n / names[i]).string());

  // A class folder whose name is not UTF-8 cannot be a class of a JSON report: said clearly.
  fs::rename(data / "lung_colon_image_set/lung_image_sets/lung_aca", data / "lung_colon_image_set/lung_image_sets/aca\xff");
  const auto refused = run_histotrain(args + (dir / "three").string());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("not UTF-8"), std::string::npos) << refused.err;
}

// eval reads a valid cache from a folder it cannot write.
TEST(Hostile, EvalReadsAValidCacheFromAReadOnlyFolder) {
  ScratchDir dir;
  const fs::path cache = dir / "cache";
  const std::string eval = "eval --checkpoint " + trained_run().string() + " --data " + synth_data() +
                           " --quiet --cache-dir " + cache.string();
  ASSERT_EQ(run_histotrain(eval).exit_code, 0);
  fs::permissions(cache, fs::perms::owner_read | fs::perms::owner_exec);
  const auto again = run_histotrain(eval);
  fs::permissions(cache, fs::perms::owner_all);
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

// The inodes of the sockets the processes `pids` hold open ("socket:[INODE]" links in /proc/PID/fd).
std::set<std::string> socket_inodes(const std::vector<pid_t>& pids) {
  std::set<std::string> inodes;
  for (const pid_t pid : pids) {
    std::error_code error;
    for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error)) {
      const std::string target = fs::read_symlink(fd.path(), error).string();
      if (target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
    }
  }
  return inodes;
}

// The local address (hex, as /proc/net/tcp and tcp6 write it) of each TCP socket in `inodes`.
std::vector<std::string> local_addresses_of(const std::set<std::string>& inodes) {
  std::vector<std::string> addresses;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream lines(testing::read_text(table));
    std::string line;
    std::getline(lines, line);  // the header
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      if (inodes.count(inode)) addresses.push_back(local);
    }
  }
  return addresses;
}

// `launch` ranks meet through a private file: every socket of the job, listening or connected,
// is on loopback (a TCPStore of LibTorch 1.13 would listen on 0.0.0.0 here).
TEST(Hostile, LaunchedRanksListenOnLoopbackOnly) {
  ScratchDir dir;
  const std::string out = (dir / "run").string();
  Running launch(HISTOTRAIN_EXE, {testing::words("launch -n 2 -- " + quick_train(synth_data(), out, 2))});
  ASSERT_TRUE(launch.wait_for_err("training resnet18", 300)) << launch.err_so_far();
  const std::vector<pid_t> ranks = testing::children_of(launch.pid());
  EXPECT_EQ(ranks.size(), 2u);
  const std::set<std::string> inodes = socket_inodes(ranks);
  const std::vector<std::string> bound = local_addresses_of(inodes);
  const Finished ended = launch.finish();
  EXPECT_EQ(ended.exit_code, 0) << ended.err;
  EXPECT_FALSE(bound.empty()) << "the ranks' Gloo connections are seen";
  for (const std::string& local : bound)
    EXPECT_TRUE(local.rfind("0100007F:", 0) == 0 || local.rfind("0000000000000000FFFF00000100007F:", 0) == 0 ||
                local.rfind("00000000000000000000000001000000:", 0) == 0)
        << "a socket of the job is bound beyond loopback: " << local;
}

}  // namespace
}  // namespace histotrain
