// histotrain scaling-model: data-parallel images/s and efficiency predicted for 2 to 1,024 ranks
// (distributed/scaling_model.h) from measured pieces: links (link-bench), a run's compute time, and the
// gradient traffic of data-parallel runs (their summaries' reducer_profile); beside each
// measured data-parallel run, what the model predicts for it. Every input file comes from
// someone else: only bounded numbers are taken from them, and labels are quoted for gnuplot.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "distributed/scaling_model.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/gnuplot.h"
#include "util/json_file.h"
#include "util/json_text.h"

namespace histotrain {

namespace {

constexpr uint64_t kMaxInputBytes = 64ull << 20;

nlohmann::json read_json(const fs::path& path) {
  auto j = read_json_file(path, kMaxInputBytes);
  if (!j.is_object()) throw Error(path.string() + " is not a JSON object");
  return j;
}

// A number in [low, high] at `key`; names the file and the field when it is not.
double number(const nlohmann::json& j, const std::string& key, double low, double high, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number()) throw Error(where + ": '" + key + "' is missing or not a number");
  const double v = j[key].get<double>();
  if (!std::isfinite(v) || v < low || v > high)
    throw Error(where + ": '" + key + "' is out of range [" + std::to_string(low) + ", " + std::to_string(high) + "]");
  return v;
}

std::string text(const nlohmann::json& j, const std::string& key, const std::string& where, size_t max_size = 64) {
  if (!j.contains(key) || !j[key].is_string()) throw Error(where + ": '" + key + "' is missing or not text");
  std::string s = j[key].get<std::string>();
  if (s.size() > max_size) throw Error(where + ": '" + key + "' is longer than " + std::to_string(max_size));
  return s;
}

struct Link {
  std::string label;
  LinkModel model;
};

Link read_link(const std::string& file) {
  const auto j = read_json(file);
  Link link;
  link.label = j.contains("label") ? text(j, "label", file) : "";
  if (link.label.empty()) link.label = fs::path(file).stem().string().substr(0, 64);
  link.model.alpha_s = number(j, "alpha_s", 0, 10, file);
  link.model.beta_s_per_byte = number(j, "beta_s_per_byte", 1e-15, 1, file);
  return link;
}

struct RunFigures {
  std::string name;
  nlohmann::json summary;
  double step_s = 0;       // train_s / steps
  double post_s = 0;       // exposed: after backward, until the gradients were averaged
  double backward_s = 0;
  double allreduce_s = 0;  // the reducer's span, first bucket start to last completion
  int64_t batch_per_rank = 0;
  int world_size = 1;
};

RunFigures read_run(const std::string& folder) {
  RunFigures r;
  r.name = fs::path(folder).filename().string().substr(0, 64);
  const std::string where = (fs::path(folder) / "summary.json").string();
  r.summary = read_json(fs::path(folder) / "summary.json");
  const double steps = number(r.summary, "steps", 1, 1e12, where);
  r.step_s = number(r.summary, "train_s", 1e-9, 1e9, where) / steps;
  r.batch_per_rank = static_cast<int64_t>(number(r.summary, "batch_per_rank", 1, 1e7, where));
  r.world_size = static_cast<int>(number(r.summary, "world_size", 1, 1e6, where));
  if (!r.summary.contains("step_times_ms") || !r.summary["step_times_ms"].is_object())
    throw Error(where + ": no step_times_ms (written by histotrain train)");
  const auto& t = r.summary["step_times_ms"];
  r.backward_s = number(t, "backward", 0, 1e9, where) / 1000;
  r.post_s = number(t, "exposed", 0, 1e9, where) / 1000;
  r.allreduce_s = number(t, "allreduce", 0, 1e9, where) / 1000;
  if (r.backward_s <= 0) throw Error(where + ": backward time 0 (a pipeline run? the model is for data parallelism)");
  return r;
}

// The compute side of a profile: a run's step less what it waited for after backward.
StepProfile compute_of(const RunFigures& r) {
  StepProfile p;
  p.compute_s = std::max(r.step_s - r.post_s, r.backward_s);
  p.backward_s = r.backward_s;
  p.batch_per_rank = r.batch_per_rank;
  return p;
}

CompressionKind compression_kind(const std::string& name, const std::string& where) {
  const auto choice = CompressionChoice::parse(name);
  if (!choice) throw Error(where + ": unknown grad_compression '" + name + "'");
  return choice->kind;
}

struct Traffic {
  std::string label;  // the run's --grad-compression
  StepProfile profile;  // buckets, factors, compression time (compute fields unset)
};

Traffic traffic_of(const RunFigures& r) {
  const std::string where = r.name + "/summary.json";
  if (!r.summary.contains("reducer_profile") || !r.summary["reducer_profile"].is_object())
    throw Error(where + ": no reducer_profile (a data-parallel run of 2 or more ranks is needed)");
  const auto& j = r.summary["reducer_profile"];
  Traffic t;
  t.label = text(j, "grad_compression", where);
  t.profile.compression = compression_kind(t.label, where);
  t.profile.backend = text(j, "backend", where);
  t.profile.compression_s = number(j, "compression_ms", 0, 1e9, where) / 1000;
  if (!j.contains("buckets") || !j["buckets"].is_array() || j["buckets"].size() > 100000)
    throw Error(where + ": reducer_profile.buckets is missing or too long");
  for (const auto& b : j["buckets"]) {
    if (!b.is_object()) throw Error(where + ": a bucket is not an object");
    StepProfile::Bucket bucket;
    bucket.values = static_cast<int64_t>(number(b, "values", 0, 1e12, where));
    bucket.bytes_per_value = static_cast<int>(number(b, "bytes_per_value", 1, 8, where));
    bucket.ready_share = number(b, "ready_share", 0, 1, where);
    t.profile.buckets.push_back(bucket);
  }
  if (j.contains("powersgd") && j["powersgd"].is_object()) {
    const auto& p = j["powersgd"];
    if (number(p, "compressed_steps", 0, 1e12, where) > 0) {
      t.profile.powersgd_p_values = static_cast<int64_t>(number(p, "p_values", 0, 1e12, where));
      t.profile.powersgd_q_values = static_cast<int64_t>(number(p, "q_values", 0, 1e12, where));
      if (p.contains("groups")) t.profile.powersgd_groups = static_cast<int>(number(p, "groups", 1, 1000, where));
    }
    if (number(p, "start_step", 0, 1e12, where) > 0)
      std::fprintf(stderr, "scaling-model: %s compressed only after step %g: its compression time is averaged over "
                           "uncompressed steps too (profile with --powersgd-start-step 0)\n",
                   r.name.c_str(), number(p, "start_step", 0, 1e12, where));
  }
  return t;
}

StepProfile combine(const StepProfile& compute, const Traffic& traffic) {
  StepProfile p = traffic.profile;
  p.compute_s = compute.compute_s;
  p.backward_s = compute.backward_s;
  p.batch_per_rank = compute.batch_per_rank;
  return p;
}

struct ScalingOptions {
  std::vector<std::string> links, profiles, measured;
  std::string compute;
  std::vector<int> ranks{2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  std::string plot;
  bool json = false;
  double alpha_us = -1;  // what-if: every link's latency replaced (< 0: as measured)
};

std::string fixed(double v, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, v);
  return buffer;
}

// Efficiency against ranks, a line per link and compression, log2 ranks.
void write_plot(const std::string& png, const nlohmann::json& predictions) {
  const fs::path out = fs::absolute(png);
  const fs::path folder = out.parent_path();
  ensure_writable_dir(folder);
  const std::string data_name = out.stem().string() + ".dat";
  std::ofstream data(folder / data_name);
  std::ostringstream plot;
  plot << "set terminal pngcairo size 900,560\n" << gnuplot_output(out.filename().string())
       << "set logscale x 2\nset xlabel 'ranks (one per host)'\nset ylabel 'predicted efficiency'\n"
       << "set yrange [0:1.05]\nset key outside right\nset grid\n"
       << "set title 'Data-parallel efficiency predicted by the scaling model'\nplot ";
  int index = 0;
  for (const auto& series : predictions) {
    data << "# " << gnuplot_data_title(series["link"].get<std::string>() + " " + series["gradients"].get<std::string>())
         << "\n";
    for (const auto& row : series["rows"]) data << row["ranks"].get<int>() << " " << row["efficiency"].get<double>() << "\n";
    data << "\n\n";
    if (index > 0) plot << ", ";
    plot << gnuplot_literal(data_name) << " index " << index << " using 1:2 with linespoints title "
         << gnuplot_literal(series["link"].get<std::string>() + ", " + series["gradients"].get<std::string>());
    ++index;
  }
  plot << "\n";
  data.close();
  const std::string script = out.stem().string() + ".gnuplot";
  write_file_atomically(folder / script, plot.str());
  const std::string failed = run_gnuplot(folder, script, script + ".log");
  if (!failed.empty()) std::fprintf(stderr, "scaling-model: no plot: %s\n", failed.c_str());
}

// The prediction for each link and traffic at each rank count.
nlohmann::json predict_all(const std::vector<Link>& links, const std::vector<Traffic>& traffics,
                           const StepProfile& compute, const std::vector<int>& ranks) {
  nlohmann::json predictions = nlohmann::json::array();
  for (const auto& link : links)
    for (const auto& traffic : traffics) {
      nlohmann::json rows = nlohmann::json::array();
      for (const int n : ranks) {
        const ScalingPrediction p = predict_step(combine(compute, traffic), link.model, n);
        rows.push_back({{"ranks", n},
                        {"link_busy_ms", 1000 * p.link_busy_s},
                        {"after_backward_ms", 1000 * p.post_s},
                        {"step_ms", 1000 * p.step_s},
                        {"images_per_s", p.images_per_s},
                        {"efficiency", p.efficiency}});
      }
      predictions.push_back({{"link", link.label}, {"gradients", traffic.label}, {"rows", rows}});
    }
  return predictions;
}

// Each measured run beside the prediction for it: its own compute (ranks that share cores
// compute slower than one alone), the traffic of the --profile with its compression.
nlohmann::json compare_measured(const std::vector<std::string>& measured, const std::vector<Link>& links,
                                const std::vector<Traffic>& traffics) {
  nlohmann::json comparisons = nlohmann::json::array();
  for (const auto& f : measured) {
    const RunFigures run = read_run(f);
    const Traffic own = traffic_of(run);
    const Traffic* traffic = &own;
    for (const auto& t : traffics)
      if (t.label == own.label) traffic = &t;
    for (const auto& link : links) {
      const ScalingPrediction p = predict_step(combine(compute_of(run), *traffic), link.model, run.world_size);
      comparisons.push_back({{"run", run.name},
                             {"link", link.label},
                             {"gradients", own.label},
                             {"ranks", run.world_size},
                             {"measured", {{"step_ms", 1000 * run.step_s},
                                           {"after_backward_ms", 1000 * run.post_s},
                                           {"allreduce_span_ms", 1000 * run.allreduce_s},
                                           {"comm_share", run.post_s / run.step_s},
                                           {"images_per_s", run.world_size * run.batch_per_rank / run.step_s}}},
                             {"predicted", {{"step_ms", 1000 * p.step_s},
                                            {"after_backward_ms", 1000 * p.post_s},
                                            {"link_busy_ms", 1000 * p.link_busy_s},
                                            {"comm_share", p.comm_share},
                                            {"images_per_s", p.images_per_s}}}});
    }
  }
  return comparisons;
}

void print_tables(const RunFigures& compute_run, const StepProfile& compute, const nlohmann::json& predictions,
                  const nlohmann::json& comparisons) {
  std::printf("Predicted by the scaling model (not measured): compute %.1f ms a step and backward %.1f ms from %s, "
              "batch %lld per rank; efficiency against one rank alone.\n\n",
              1000 * compute.compute_s, 1000 * compute.backward_s, compute_run.name.c_str(),
              static_cast<long long>(compute.batch_per_rank));
  std::printf("| link | gradients | ranks | link busy ms | after backward ms | step ms | images/s | efficiency |\n"
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& series : predictions)
    for (const auto& row : series["rows"])
      std::printf("| %s | %s | %d | %s | %s | %s | %s | %s |\n", series["link"].get<std::string>().c_str(),
                  series["gradients"].get<std::string>().c_str(), row["ranks"].get<int>(),
                  fixed(row["link_busy_ms"], 1).c_str(), fixed(row["after_backward_ms"], 1).c_str(),
                  fixed(row["step_ms"], 1).c_str(), fixed(row["images_per_s"], 1).c_str(),
                  fixed(row["efficiency"], 2).c_str());
  if (comparisons.empty()) return;
  std::printf("\nMeasured runs beside the prediction for them (each run's own compute time):\n\n"
              "| run | link | gradients | ranks | after backward ms measured / predicted | communication share "
              "measured / predicted | images/s measured / predicted |\n| --- | --- | --- | ---: | ---: | ---: | ---: |\n");
  for (const auto& c : comparisons)
    std::printf("| %s | %s | %s | %d | %s / %s | %s / %s | %s / %s |\n", c["run"].get<std::string>().c_str(),
                c["link"].get<std::string>().c_str(), c["gradients"].get<std::string>().c_str(), c["ranks"].get<int>(),
                fixed(c["measured"]["after_backward_ms"], 1).c_str(), fixed(c["predicted"]["after_backward_ms"], 1).c_str(),
                fixed(c["measured"]["comm_share"], 3).c_str(), fixed(c["predicted"]["comm_share"], 3).c_str(),
                fixed(c["measured"]["images_per_s"], 1).c_str(), fixed(c["predicted"]["images_per_s"], 1).c_str());
}

int run_scaling(const ScalingOptions& o) {
  std::vector<Link> links;
  for (const auto& f : o.links) links.push_back(read_link(f));
  if (o.alpha_us >= 0)
    for (auto& link : links) {
      link.model.alpha_s = o.alpha_us * 1e-6;
      link.label += " (what-if: alpha " + fixed(o.alpha_us, 0) + " us)";
    }
  const RunFigures compute_run = read_run(o.compute);
  const StepProfile compute = compute_of(compute_run);
  std::vector<Traffic> traffics;
  for (const auto& f : o.profiles) traffics.push_back(traffic_of(read_run(f)));
  if (traffics.empty()) throw UsageError("scaling-model needs --profile: a data-parallel run's summary gives the traffic");
  const nlohmann::json predictions = predict_all(links, traffics, compute, o.ranks);
  const nlohmann::json comparisons = compare_measured(o.measured, links, traffics);
  if (!o.plot.empty()) write_plot(o.plot, predictions);
  if (o.json) {
    std::printf("%s\n", json_text(nlohmann::json{{"compute_from", compute_run.name},
                                                 {"compute_ms", 1000 * compute.compute_s},
                                                 {"backward_ms", 1000 * compute.backward_s},
                                                 {"batch_per_rank", compute.batch_per_rank},
                                                 {"predictions", predictions},
                                                 {"measured", comparisons}},
                                  2)
                            .c_str());
    return 0;
  }
  print_tables(compute_run, compute, predictions, comparisons);
  return 0;
}

}  // namespace

Command add_scaling_command(CLI::App& root) {
  auto o = std::make_shared<ScalingOptions>();
  CLI::App* app = root.add_subcommand(
      "scaling-model", "Predict data-parallel images/s and efficiency for 2 to 1,024 ranks from measured links, "
                       "compute and gradient traffic; and compare with measured runs");
  app->add_option("--link", o->links, "A link-bench JSON (repeat for several link speeds)")->required();
  app->add_option("--compute", o->compute, "Run folder whose step time is the compute per rank (a 1-rank run at "
                                           "the batch per rank to model)")
      ->required();
  app->add_option("--profile", o->profiles, "Data-parallel run folder whose reducer_profile gives the gradient "
                                            "traffic (repeat: one per --grad-compression)");
  app->add_option("--measured", o->measured, "Data-parallel run folders to set beside the prediction for them");
  app->add_option("--ranks", o->ranks, "Rank counts to predict")->delimiter(',')->check(CLI::Range(1, 1 << 20));
  app->add_option("--plot", o->plot, "PNG of predicted efficiency against ranks (needs gnuplot)");
  app->add_flag("--json", o->json, "One JSON object instead of tables");
  app->add_option("--alpha-us", o->alpha_us, "What-if: every link's latency per message, microseconds, instead of "
                                             "the measured one (the labels say so)")
      ->check(CLI::Range(0.0, 1e6));
  return {app, [o] { return run_scaling(*o); }};
}

}  // namespace histotrain
