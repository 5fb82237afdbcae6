#include "bench/study_runner.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <ctime>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "bench/decode_timing.h"
#include "core/compat.h"
#include "data/scan.h"
#include "train/system_info.h"
#include "util/allocator.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/json_file.h"
#include "util/json_text.h"
#include "util/process.h"
#include "util/progress.h"

namespace histotrain {

namespace {


std::string self_executable() { return fs::read_symlink("/proc/self/exe").string(); }

// A command line as its words: each run is started from them (util/process.h), never through a
// shell, so a path or a name from a plan file stays one argument.
using Args = std::vector<std::string>;
Args operator+(Args a, const Args& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The study's state while it runs: plan, options, the results so far and the progress line.
class Study {
 public:
  Study(const StudyPlan& plan, const StudyOptions& options)
      : plan_(plan), o_(options), out_(options.out), exe_(self_executable()), system_(system_info()),
        cores_(static_cast<int>(std::thread::hardware_concurrency())), cuda_(compat::cuda_available()) {
    cache_ = o_.cache_dir.empty() ? out_ / "cache" : fs::path(o_.cache_dir);
    fs::create_directories(out_ / "runs");
    results_ = {{"study",
                 {{"cpu", system_.at("cpu").at("model")},
                  {"isa", system_.at("cpu").at("isa")},
                  {"gpus", system_.at("gpus")},
                  {"cores", cores_},
                  {"cuda", cuda_},
                  {"torch", compat::torch_version()},
                  {"allocator", allocator_name()},
                  {"data", fs::absolute(o_.data).string()},
                  {"date", utc_date()},
                  {"peer", o_.peer.empty() ? nlohmann::json(nullptr) : nlohmann::json(o_.peer)},
                  {"plan", to_json(plan_)}}},
                {"training", nlohmann::json::array()},
                {"accuracy", nlohmann::json::array()},
                {"decode", nlohmann::json::array()}};
    scan_size_ = static_cast<int64_t>(scan_image_folder(o_.data).images.size());
    find_peers();
    count_units();
  }

  nlohmann::json run() {
    start_ = Clock::now();
    warm_cache();
    for (const StudyConfig& c : plan_.configs) measure_throughput(c);
    for (const std::string& name : plan_.accuracy_configs) measure_accuracy(config_named(name));
    measure_decoding();
    results_["study"]["seconds"] = seconds_since(start_);
    save();
    return results_;
  }

 private:
  static std::string utc_date() {
    const std::time_t now = std::time(nullptr);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    return text;
  }

  const StudyConfig& config_named(const std::string& name) const {
    for (const auto& c : plan_.configs)
      if (c.name == name) return c;
    throw UsageError("plan: no configuration named '" + name + "'");
  }

  bool feasible(const StudyConfig& c) const { return infeasible_reason(c, plan_, cores_, cuda_).empty(); }
  bool peer_runs(const StudyConfig& c) const { return !peers_.empty() && peer_unsupported_reason(c).empty(); }

  // One way of running the Python peer: an interpreter, eager or compiled.
  struct Peer {
    std::string program;  // the rows' "program"
    std::string python;
    std::string torch;    // its torch.__version__
    bool compiled = false;
  };

  // Every --peer-python, asked for its torch version; PyTorch 2.x also compiled with --peer-compile.
  void find_peers() {
    if (o_.peer.empty()) return;
    for (const std::string& python : o_.peer_pythons) {
      const std::string torch = torch_version_of(python);
      add_peer({peers_.empty() ? "peer" : "peer torch " + torch, python, torch, false});
      if (o_.peer_compile && torch.rfind("1.", 0) != 0) add_peer({"peer torch " + torch + " compiled", python, torch, true});
    }
    nlohmann::json listed = nlohmann::json::array();
    for (const Peer& p : peers_)
      listed.push_back({{"program", p.program}, {"python", p.python}, {"torch", p.torch}, {"compiled", p.compiled}});
    results_["study"]["peers"] = listed;
  }

  // Two interpreters with the same torch get programs of their own: "... (2)".
  void add_peer(Peer peer) {
    const std::string name = peer.program;
    for (int k = 2; std::any_of(peers_.begin(), peers_.end(), [&](const Peer& p) { return p.program == peer.program; }); ++k)
      peer.program = name + " (" + std::to_string(k) + ")";
    peers_.push_back(peer);
  }

  // What `python` says its torch version is: a label, kept to a version's characters.
  std::string torch_version_of(const std::string& python) const {
    const fs::path log = out_ / "runs" / ("peer-python-" + std::to_string(peers_.size()) + ".log");
    const int code = run_process({python, "-c", "import torch, torchvision; print(torch.__version__)"}, log);
    std::string version;
    for (const char ch : read_text_file(log))
      if (std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '+' || ch == '-') version += ch;
      else if (ch == '\n' && !version.empty()) break;
    if (code != 0 || version.empty() || version.size() > 40)
      throw UsageError("--peer-python " + python + " does not import torch and torchvision (see " + log.string() + ")");
    return version;
  }

  // Runs for the progress line, and their expected cost for its estimate of the time left: a
  // throughput run costs 1; a time-to-accuracy run its epochs' steps in throughput runs' steps.
  void count_units() {
    for (const auto& c : plan_.configs)
      if (feasible(c)) total_units_ += plan_.repeats * (1 + (peer_runs(c) ? static_cast<int>(peers_.size()) : 0));
    for (const auto& name : plan_.accuracy_configs)
      if (feasible(config_named(name))) total_units_ += 1;
    total_units_ += static_cast<int>(plan_.decode_workers.size()) * 2;
    total_cost_ = total_units_ + static_cast<double>(plan_.accuracy_configs.size()) * (accuracy_cost() - 1);
  }

  double accuracy_cost() const {
    const double steps_per_epoch = std::max(1.0, 0.8 * static_cast<double>(scan_size_) / plan_.global_batch);
    return std::max(1.0, plan_.accuracy_epochs * steps_per_epoch / plan_.steps);
  }

  void finished(double cost = 1) {
    ++done_units_;
    done_cost_ += cost;
  }

  void announce(const std::string& what) {
    if (o_.quiet) return;
    const double elapsed = seconds_since(start_);
    std::string eta = done_cost_ > 0 ? ", about " + format_duration(elapsed / done_cost_ * std::max(0.0, total_cost_ - done_cost_)) + " left"
                                     : "";
    std::fprintf(stderr, "bench [%d/%d] %s (%s elapsed%s)\n", done_units_ + 1, total_units_, what.c_str(),
                 format_duration(elapsed).c_str(), eta.c_str());
  }

  void save() const { write_file_atomically(out_ / "results.json", json_text(results_, 2) + "\n"); }

  // What every histotrain run of the study shares: configuration `c` of the plan, into `run`.
  TrainConfig train_config(const StudyConfig& c, const fs::path& run) const {
    TrainConfig t;
    t.data.root = o_.data;
    t.data.groups = o_.groups;
    t.data.cache_dir = cache_.string();
    t.data.image_size = plan_.image_size;
    t.data.prefetch = c.prefetch;
    t.model.arch = plan_.arch;
    t.optim.batch_size = c.pipeline_stages > 1 ? plan_.global_batch : plan_.global_batch / c.ranks;
    t.precision.amp = c.amp;
    t.precision.channels_last = c.channels_last;
    t.parallel.pipeline_stages = c.pipeline_stages;
    t.parallel.micro_batches = c.micro_batches;
    t.job.threads = c.threads;
    t.job.device.cuda = c.cuda;
    t.job.quiet = true;
    t.job.out = run.string();
    return t;
  }

  // The training run `t` as configuration `c` starts it: launched as c.ranks ranks when more than one.
  Args train_command(const StudyConfig& c, const TrainConfig& t) const {
    const Args launch = c.ranks > 1 ? Args{"launch", "-n", std::to_string(c.ranks), "--threads-per-rank",
                                           std::to_string(c.threads), "--"}
                                    : Args{};
    return Args{exe_} + launch + Args{"train"} + train_flags(t);
  }

  // Decodes the data once (cache and groups) so that no configuration pays for it.
  void warm_cache() {
    announce("decoding the tiles once into the cache");
    const fs::path run = out_ / "runs" / "warm-up";
    fs::remove_all(run);
    TrainConfig t = train_config(plan_.configs.front(), run);
    t.optim.epochs = 1;
    t.job.max_steps = 1;
    t.data.val_fraction = 0;
    const int code = run_process(train_command(plan_.configs.front(), t), run.string() + ".log");
    finished();
    if (code != 0) throw Error("the study's first run failed; see " + run.string() + ".log");
  }

  nlohmann::json config_record(const StudyConfig& c, const std::string& program) const {
    return {{"config", c.name}, {"program", program}, {"method", c.method()}, {"ranks", c.ranks},
            {"threads", c.threads}, {"workers", c.workers()}, {"device", c.device()}, {"amp", spelling(c.amp)},
            {"channels_last", c.channels_last}, {"pipeline_stages", c.pipeline_stages},
            {"micro_batches", c.micro_batches}, {"prefetch", c.prefetch}};
  }

  static void mark_failed(nlohmann::json& record, int code, const std::string& log) {
    record["status"] = "failed";
    record["reason"] = "exit code " + std::to_string(code) + ", see " + log;
  }

  void add_skipped(const StudyConfig& c, const std::string& program, const std::string& reason) {
    nlohmann::json r = config_record(c, program);
    r["status"] = "skipped";
    r["reason"] = reason;
    results_["training"].push_back(r);
  }

  // Throughput: `repeats` runs of `steps` steps each; median and spread of images/s.
  void measure_throughput(const StudyConfig& c) {
    if (const std::string why = infeasible_reason(c, plan_, cores_, cuda_); !why.empty()) {
      add_skipped(c, "histotrain", why);
      for (const Peer& p : peers_) add_skipped(c, p.program, why);
      save();
      return;
    }
    nlohmann::json r = config_record(c, "histotrain");
    std::vector<double> rates;
    for (int k = 0; k < plan_.repeats; ++k) {
      announce(c.name + ", run " + std::to_string(k + 1) + "/" + std::to_string(plan_.repeats));
      const fs::path run = out_ / "runs" / (c.name + "-" + std::to_string(k + 1));
      fs::remove_all(run);
      TrainConfig t = train_config(c, run);
      t.optim.epochs = 1;
      t.data.val_fraction = 0;
      t.job.max_steps = plan_.steps;
      const int code = run_process(train_command(c, t), run.string() + ".log");
      finished();
      if (code != 0) {
        mark_failed(r, code, run.string() + ".log");
        break;
      }
      const nlohmann::json s = read_summary(run);
      rates.push_back(s.at("steps").get<double>() * s.at("global_batch").get<double>() / s.at("train_s").get<double>());
      r["peak_rss_mib"] = s.value("peak_rss_mib", 0.0);
      r["train_images"] = s.value("train_images", 0);
    }
    if (!r.contains("status")) r["status"] = "ok";
    add_rates(r, rates);
    results_["training"].push_back(r);
    save();
    for (const Peer& p : peers_) measure_peer(c, p);
  }

  static nlohmann::json read_summary(const fs::path& run) { return read_json_file(run / "summary.json"); }

  static void add_rates(nlohmann::json& r, const std::vector<double>& rates) {
    r["images_per_s_runs"] = rates;
    if (rates.empty()) return;
    r["images_per_s"] = median(rates);
    r["images_per_s_min"] = *std::min_element(rates.begin(), rates.end());
    r["images_per_s_max"] = *std::max_element(rates.begin(), rates.end());
  }

  // Steps a compiled peer takes before its rate counts: compilation happens in the first.
  int compile_warmup_steps() const { return std::max(2, plan_.steps / 5); }

  // The Python peer with the same model, size, global batch, steps, precision and cores.
  void measure_peer(const StudyConfig& c, const Peer& peer) {
    if (const std::string why = peer_unsupported_reason(c); !why.empty()) {
      add_skipped(c, peer.program, why);
      save();
      return;
    }
    nlohmann::json r = config_record(c, peer.program);
    r["peer_torch"] = peer.torch;
    r["compiled"] = peer.compiled;
    std::vector<double> rates, compile_seconds;
    for (int k = 0; k < plan_.repeats; ++k) {
      announce(c.name + ", Python peer (" + peer.program + "), run " + std::to_string(k + 1) + "/" +
               std::to_string(plan_.repeats));
      const fs::path log = out_ / "runs" / ("peer-" + std::to_string(&peer - peers_.data()) + "-" + c.name + "-" +
                                            std::to_string(k + 1) + ".log");
      const int code = run_process(peer_command(c, peer), log);
      finished();
      const PeerFigures figures = peer_figures(log, peer.compiled);
      if (code != 0 || figures.rate <= 0) {
        mark_failed(r, code, log.string());
        break;
      }
      rates.push_back(figures.rate);
      if (peer.compiled) compile_seconds.push_back(figures.compile_s);
    }
    if (!r.contains("status")) r["status"] = "ok";
    add_rates(r, rates);
    if (!compile_seconds.empty()) {
      r["compile_s"] = median(compile_seconds);
      r["warmup_steps"] = compile_warmup_steps();
    }
    results_["training"].push_back(r);
    save();
  }

  Args peer_command(const StudyConfig& c, const Peer& peer) const {
    Args command = {peer.python, o_.peer, "--data", o_.data, "--arch", plan_.arch.text(), "--image-size",
                    std::to_string(plan_.image_size), "--batch-size", std::to_string(plan_.global_batch / c.ranks),
                    "--nproc", std::to_string(c.ranks), "--threads", std::to_string(c.threads), "--workers", "1",
                    "--max-steps", std::to_string(plan_.steps), "--amp", spelling(c.amp), "--device", c.device()};
    if (c.channels_last) command.push_back("--channels-last");
    if (peer.compiled) command = command + Args{"--compile", "--warmup-steps", std::to_string(compile_warmup_steps())};
    return command;
  }

  // A peer run's images/s (a compiled one's after its warm-up steps) and, compiled, the time it
  // took beyond what all its steps take once compiled; rate 0 when the log has no result.
  struct PeerFigures {
    double rate = 0, compile_s = 0;
  };
  static PeerFigures peer_figures(const fs::path& log, bool compiled) {
    std::istringstream in(read_text_file(log));
    std::string line, last;
    while (std::getline(in, line))
      if (line.rfind("RESULT ", 0) == 0) last = line.substr(7);
    const nlohmann::json result = parse_json_or_null(last);
    const auto number = [&](const char* key) {
      const nlohmann::json v = result.is_object() ? result.value(key, nlohmann::json()) : nlohmann::json();
      return v.is_number() ? v.get<double>() : 0.0;
    };
    PeerFigures f;
    f.rate = number(compiled ? "imgs_per_s_after_warmup" : "imgs_per_s");
    if (compiled && f.rate > 0) {
      const double images = number("steps") * number("batch_per_rank") * number("world");
      f.compile_s = std::max(0.0, number("train_s") - images / f.rate);
    }
    return f;
  }

  // Time to accuracy: epochs with validation on the grouped split, stopping at the target.
  void measure_accuracy(const StudyConfig& c) {
    if (!feasible(c)) return;
    announce(c.name + ", time to accuracy (" + std::to_string(plan_.accuracy_epochs) + " epochs at most)");
    const fs::path run = out_ / "runs" / (c.name + "-accuracy");
    fs::remove_all(run);
    TrainConfig t = train_config(c, run);
    t.optim.epochs = plan_.accuracy_epochs;
    t.job.target_acc = plan_.target_acc;
    const int code = run_process(train_command(c, t), run.string() + ".log");
    finished(accuracy_cost());
    nlohmann::json r = config_record(c, "histotrain");
    if (code != 0) {
      mark_failed(r, code, run.string() + ".log");
    } else {
      const nlohmann::json s = read_summary(run);
      r["status"] = "ok";
      r["epochs"] = s.at("epochs");
      r["target_acc"] = plan_.target_acc;
      r["time_to_target_s"] = s.at("time_to_target_s");
      r["train_s"] = s.at("train_s");
      r["val_acc"] = s.at("val").value("accuracy", 0.0);
      r["val_macro_f1"] = s.at("val").value("macro_f1", 0.0);
      r["classes"] = s.at("classes");
      r["confusion_matrix"] = s.at("val").value("confusion_matrix", nlohmann::json::array());
      r["val_images"] = s.at("val_images");
      nlohmann::json curve = nlohmann::json::array();
      std::istringstream metrics(read_text_file(run / "metrics.jsonl"));
      for (std::string line; std::getline(metrics, line);)
        if (!line.empty()) curve.push_back(parse_json(line, (run / "metrics.jsonl").string()));
      r["curve"] = curve;
    }
    results_["accuracy"].push_back(r);
    save();
  }

  // Decode + resize of real tiles: threads inside one process, then separate processes.
  void measure_decoding() {
    const ScanResult scan = scan_image_folder(o_.data);
    std::vector<std::string> paths;
    const size_t n = std::min<size_t>(scan.images.size(), static_cast<size_t>(std::max(1, plan_.decode_images)));
    const size_t stride = std::max<size_t>(1, scan.images.size() / n);
    for (size_t i = 0; i < scan.images.size() && paths.size() < n; i += stride) paths.push_back(scan.images[i].path);
    // One untimed pass first: the files in the page cache and the decoder's first-use costs paid,
    // so that the first timed configuration is not the only one that pays them.
    const fs::path work = out_ / "runs";
    decode_with_threads(paths, plan_.image_size, cores_, work);
    for (const char* mode : {"threads", "processes"})
      for (int workers : plan_.decode_workers) {
        announce(std::string("decoding ") + std::to_string(paths.size()) + " tiles with " + std::to_string(workers) +
                 " " + mode);
        nlohmann::json r = {{"mode", mode}, {"workers", workers}, {"images", paths.size()}, {"size", plan_.image_size}};
        if (workers > cores_) {
          r["status"] = "skipped";
          r["reason"] = "needs " + std::to_string(workers) + " cores";
        } else {
          const auto [wall, decoding] = std::string(mode) == "threads"
                                            ? decode_with_threads(paths, plan_.image_size, workers, work)
                                            : decode_with_processes(exe_, paths, plan_.image_size, workers, work);
          r["status"] = "ok";
          r["seconds"] = decoding;
          r["wall_seconds"] = wall;
          r["images_per_s"] = static_cast<double>(paths.size()) / decoding;
          r["images_per_s_wall"] = static_cast<double>(paths.size()) / wall;
        }
        finished();
        results_["decode"].push_back(r);
        save();
      }
  }

  const StudyPlan& plan_;
  const StudyOptions& o_;
  std::vector<Peer> peers_;  // the peer runs of each configuration (none without --peer)
  fs::path out_, cache_;
  std::string exe_;
  nlohmann::json system_;  // where the study runs (system_info())
  int cores_;
  bool cuda_;
  nlohmann::json results_;
  int total_units_ = 1, done_units_ = 0;  // 1: the warm-up
  double total_cost_ = 1, done_cost_ = 0;
  int64_t scan_size_ = 0;  // images in the data set
  Clock::time_point start_ = Clock::now();
};

}  // namespace

nlohmann::json run_study(const StudyPlan& plan, const StudyOptions& options) { return Study(plan, options).run(); }

}  // namespace histotrain
