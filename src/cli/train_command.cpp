// histotrain train: training on one process, or one rank of a data-parallel job.
#include <cstdio>
#include <limits>
#include <type_traits>

#include "cli/commands.h"
#include "train/config_fields.h"
#include "train/recipes.h"
#include "train/trainer.h"
#include "util/json_text.h"
#include "util/text_form.h"

namespace histotrain {

namespace {

// Registers one row of the field table (train/config_fields.h) as a flag; enums take their
// spellings only, and the help shows each default.
struct FlagAdder {
  CLI::App* app;
  std::vector<std::pair<const CLI::Option*, std::string>>* keys;

  template <class T>
  void operator()(const FieldInfo& info, T& field) const {
    CLI::Option* option = nullptr;
    if constexpr (std::is_same_v<T, bool>) {
      option = app->add_flag(info.flag, field, info.help);
    } else if constexpr (std::is_enum_v<T>) {
      std::vector<std::string> names;
      for (const auto& [value, name] : Spellings<T>::all) names.push_back(name);
      option = app->add_option_function<std::string>(
                      info.flag, [&field](const std::string& text) { field = *from_spelling<T>(text); }, info.help)
                   ->check(CLI::IsMember(names))
                   ->default_str(spelling(field));
    } else if constexpr (has_text_form<T>) {
      option = app->add_option_function<std::string>(
                      info.flag, [&field](const std::string& text) { field = *T::parse(text); }, info.help)
                   ->check([](const std::string& text) {
                     return T::parse(text) ? std::string() : "'" + text + "' is not valid here (e.g. " + T::example() + ")";
                   })
                   ->default_str(field.text());
    } else {
      option = app->add_option(info.flag, field, info.help)->capture_default_str();
      if constexpr (std::is_integral_v<T>)
        option->check(integer_in_range(std::is_unsigned_v<T> ? 0 : std::numeric_limits<int32_t>::min(),
                                       static_cast<uint64_t>(std::numeric_limits<T>::max())));
    }
    keys->emplace_back(option, info.key);
  }
};

}  // namespace

TrainFlags add_train_flags(CLI::App* app, TrainConfig& config) {
  TrainFlags flags;
  for_each_field(config, FlagAdder{app, &flags.keys});
  app->add_flag("--trust-checkpoint", config.trust_checkpoint,
                "Also resume from an older checkpoint's TorchScript train_state.pt, which can run code: only from a "
                "source you trust");
  return flags;
}

nlohmann::json TrainFlags::given(const TrainConfig& parsed) const {
  const nlohmann::json all = to_json(parsed);
  nlohmann::json given = nlohmann::json::object();
  for (const auto& [option, key] : keys)
    if (option->count() > 0 && key != "resume") given[key] = all.at(key);
  return given;
}

Command add_train_command(CLI::App& root) {
  auto parsed = std::make_shared<TrainConfig>();
  CLI::App* app = root.add_subcommand("train", "Train a ResNet on a folder of class folders");
  auto flags = std::make_shared<TrainFlags>(add_train_flags(app, *parsed));
  add_max_image_pixels_flag(app);
  return {app, [parsed, flags] {
            const nlohmann::json given = flags->given(*parsed);
            TrainConfig config = with_recipe(*parsed, given);
            if (!parsed->job.resume.empty()) config = resumed_config(parsed->job.resume, given);
            config.trust_checkpoint = parsed->trust_checkpoint;
            const TrainOutcome outcome = train(config);
            if (outcome.stopped_by != 0) return 128 + outcome.stopped_by;  // the shell's convention for a signal
            // The summary on stdout for scripts (rank 0 only); --quiet prints nothing: summary.json has it.
            if (!outcome.summary.is_null() && !config.job.quiet) std::printf("%s\n", json_text(outcome.summary).c_str());
            return 0;
          }};
}

}  // namespace histotrain
