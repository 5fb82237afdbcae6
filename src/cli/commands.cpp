#include "cli/commands.h"

#include <charconv>
#include <cstdio>

#include "data/jpeg.h"
#include "train/system_info.h"
#include "util/errors.h"

namespace histotrain {

void add_checkpoint_flags(CLI::App* app, std::string& checkpoint, bool& trust_checkpoint) {
  app->add_option("--checkpoint", checkpoint, "Run folder (or a file in it)")->required();
  app->add_flag("--trust-checkpoint", trust_checkpoint,
                "Also load a TorchScript model.pt / train_state.pt (older checkpoints): such an archive can run code, "
                "so only from a source you trust");
}

namespace {

// CLI11 takes "" as 0 for a number (so --val-fraction "" turned validation off): every option
// that takes a value is given one that says so instead.
void refuse_empty_values(CLI::App& app) {
  const CLI::Validator non_empty(
      [](std::string& text) { return text.empty() ? std::string("an empty value (a number or a word is needed)") : ""; },
      "", "non-empty");
  for (CLI::Option* option : app.get_options())
    if (option->get_type_size_min() > 0) option->check(non_empty);
  for (CLI::App* sub : app.get_subcommands({})) refuse_empty_values(*sub);
}

}  // namespace

CLI::Validator integer_in_range(int64_t low, uint64_t high) {
  return CLI::Validator(
      [low, high](std::string& text) -> std::string {
        const bool negative = !text.empty() && text[0] == '-';
        const char* begin = text.data() + (negative ? 1 : 0);
        uint64_t magnitude = 0;
        const auto [end, error] = std::from_chars(begin, text.data() + text.size(), magnitude);
        if (text.empty() || error != std::errc() || end != text.data() + text.size())
          return error == std::errc::result_out_of_range ? "'" + text + "' is out of range" : "'" + text + "' is not a whole number";
        const bool below = negative ? (low >= 0 || magnitude > static_cast<uint64_t>(-(low + 1)) + 1) : false;
        if (below || (!negative && magnitude > high))
          return "'" + text + "' is out of range [" + std::to_string(low) + ", " + std::to_string(high) + "]";
        return "";
      },
      "INT", "integer in range");
}

void add_max_image_pixels_flag(CLI::App* app) {
  app->add_option_function<uint64_t>(
         "--max-image-pixels", [](const uint64_t& pixels) { set_max_image_pixels(pixels); },
         "Skip images whose header claims more pixels than this (default " +
             std::to_string(kDefaultMaxImagePixels) + "): a few bytes may claim gigapixels")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
}

int run_cli(int argc, char** argv) {
  CLI::App app{"histotrain: train ResNet classifiers on histopathology tiles (LC25000 layout), fast and honestly "
               "measured"};
  app.require_subcommand(1);
  // A callback, so that the machine is read only when --version is asked for.
  app.set_version_flag("--version", [] { return system_summary_line(system_info()); });
  std::vector<Command> commands = {add_synth_command(app), add_train_command(app), add_eval_command(app),
                                   add_predict_command(app), add_launch_command(app), add_groups_command(app),
                                   add_split_audit_command(app), add_bench_command(app), add_report_command(app),
                                   add_decode_bench_command(app), add_info_command(app), add_cv_command(app),
                                   add_link_bench_command(app), add_scaling_command(app), add_export_command(app), add_tile_command(app),
                                   add_restain_command(app)};
  refuse_empty_values(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    for (auto& command : commands)
      if (command.app->parsed()) return command.run();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "histotrain: %s\nRun 'histotrain %s --help' for the flags.\n", e.what(),
                 app.get_subcommands().front()->get_name().c_str());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "histotrain: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "histotrain: error: %s\n", e.what());
    return 1;
  }
  return 2;
}

}  // namespace histotrain
