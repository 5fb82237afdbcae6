// The subcommands. Each file registers its flags on the shared CLI11 app and returns the action
// that runs once the command line has parsed; main.cpp only dispatches.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace histotrain {

struct Command {
  CLI::App* app;
  std::function<int()> run;  // returns the exit code
};

Command add_synth_command(CLI::App& root);
Command add_train_command(CLI::App& root);
Command add_eval_command(CLI::App& root);
Command add_predict_command(CLI::App& root);
Command add_launch_command(CLI::App& root);
Command add_groups_command(CLI::App& root);
Command add_split_audit_command(CLI::App& root);
Command add_bench_command(CLI::App& root);
Command add_report_command(CLI::App& root);
Command add_decode_bench_command(CLI::App& root);
Command add_info_command(CLI::App& root);
Command add_cv_command(CLI::App& root);
Command add_link_bench_command(CLI::App& root);
Command add_scaling_command(CLI::App& root);
Command add_export_command(CLI::App& root);
Command add_tile_command(CLI::App& root);
Command add_restain_command(CLI::App& root);

struct TrainConfig;
// The train command's flags, bound to a TrainConfig: one per row of train/config_fields.h, plus
// --trust-checkpoint.
struct TrainFlags {
  std::vector<std::pair<const CLI::Option*, std::string>> keys;  // each flag and its key in the saved form
  // The fields set on this command line, in the saved form: what --resume puts on top of the
  // saved configuration.
  nlohmann::json given(const TrainConfig& parsed) const;
};
TrainFlags add_train_flags(CLI::App* app, TrainConfig& config);

struct NearCopyOptions;
// --threshold and --neighbours, shared by `groups` and `split-audit`; and their checks.
void add_near_copy_flags(CLI::App* app, NearCopyOptions& options);
void validate_near_copy_options(const NearCopyOptions& options);

// --checkpoint (required) and --trust-checkpoint, for the commands that load a trained model.
void add_checkpoint_flags(CLI::App* app, std::string& checkpoint, bool& trust_checkpoint);

// --max-image-pixels, for every command that decodes images: the process-wide limit of
// data/jpeg.h, set while the command line is parsed.
void add_max_image_pixels_flag(CLI::App* app);

// A whole number from `low` to `high` (its text checked before CLI11 converts it: CLI11 alone
// wraps "-1" into an unsigned option and clamps values past 64 bits without a word).
CLI::Validator integer_in_range(int64_t low, uint64_t high);

// Parses, runs the chosen command, and maps failures to exit codes: 0 ok, 1 error, 2 usage.
int run_cli(int argc, char** argv);

}  // namespace histotrain
