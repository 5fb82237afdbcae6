// The typed configuration: every field has a row in the flag table (train/config_fields.h), and
// every flag survives checkpoint.json and --resume.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

#include <string_view>
#include <type_traits>

#include "cli/commands.h"
#include "train/config_fields.h"
#include "train/recipes.h"
#include "train/trainer.h"
#include "test_util.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/text_form.h"

namespace histotrain {
namespace {

// How many members an aggregate has: the most initialisers `T{...}` accepts (each group holds
// only scalars, strings and enums, so no brace elision muddles the count).
struct AnyMember {
  template <class T>
  operator T() const;
};
template <class T, class... A>
constexpr auto brace_initialisable(int) -> decltype(T{std::declval<A>()...}, true) {
  return true;
}
template <class T, class... A>
constexpr bool brace_initialisable(...) {
  return false;
}
template <class T, class... A>
constexpr size_t member_count() {
  if constexpr (brace_initialisable<T, A..., AnyMember>(0))
    return member_count<T, A..., AnyMember>();
  else
    return sizeof...(A);
}

template <class Group, class Rows>
size_t row_count(Rows rows) {
  Group group;
  size_t count = 0;
  rows(group, [&count](const FieldInfo&, const auto&) { ++count; });
  return count;
}

// A field added to a group without a row would be neither a flag nor saved: the counts differ.
TEST(Config, EveryMemberOfEveryGroupHasARowInTheFlagTable) {
  const auto data = [](auto& g, auto visit) { data_fields(g, visit); };
  const auto model = [](auto& g, auto visit) { model_fields(g, visit); };
  const auto optim = [](auto& g, auto visit) { optim_fields(g, visit); };
  const auto precision = [](auto& g, auto visit) { precision_fields(g, visit); };
  const auto parallel = [](auto& g, auto visit) { parallel_fields(g, visit); };
  const auto job = [](auto& g, auto visit) { job_fields(g, visit); };
  EXPECT_EQ(row_count<DataConfig>(data), member_count<DataConfig>());
  EXPECT_EQ(row_count<ModelConfig>(model), member_count<ModelConfig>());
  EXPECT_EQ(row_count<OptimConfig>(optim), member_count<OptimConfig>());
  EXPECT_EQ(row_count<PrecisionConfig>(precision), member_count<PrecisionConfig>());
  EXPECT_EQ(row_count<ParallelConfig>(parallel), member_count<ParallelConfig>());
  EXPECT_EQ(row_count<JobConfig>(job), member_count<JobConfig>());
  // Six groups and trust_checkpoint, which each command line decides anew.
  EXPECT_EQ(member_count<TrainConfig>(), 7u) << "a new member of TrainConfig belongs in a group";
}

// The negated name of a flag that is on by default ("--augment,!--no-augment" -> "--no-augment").
std::string negated_flag(std::string_view names) {
  const size_t bang = names.find('!');
  return bang == std::string_view::npos ? "" : std::string(names.substr(bang + 1));
}

// One command-line argument per row, each setting its field to something other than the default.
std::vector<std::string> every_flag_changed() {
  std::vector<std::string> args;
  const TrainConfig defaults;
  for_each_field(defaults, [&args](const FieldInfo& info, const auto& field) {
    using T = std::decay_t<decltype(field)>;
    const std::string flag(std::string_view(info.flag).substr(0, std::string_view(info.flag).find(',')));
    if constexpr (std::is_same_v<T, bool>) {
      args.push_back(field ? negated_flag(info.flag) : flag);
      EXPECT_FALSE(args.back().empty()) << flag << " is on by default and has no way to turn it off";
    } else if constexpr (std::is_enum_v<T>) {
      const auto& all = Spellings<T>::all;
      for (size_t i = 0; i < std::size(all); ++i)
        if (all[i].first == field) args.insert(args.end(), {flag, all[(i + 1) % std::size(all)].second});
    } else if constexpr (has_text_form<T>) {
      args.insert(args.end(), {flag, T::example()});
    } else if constexpr (std::is_same_v<T, std::string>) {
      args.insert(args.end(), {flag, "given-" + std::string(info.key)});
    } else if constexpr (std::is_floating_point_v<T>) {
      args.insert(args.end(), {flag, std::to_string(field + 0.125)});
    } else {
      args.insert(args.end(), {flag, std::to_string(field + 3)});
    }
  });
  return args;
}

struct ParsedTrainFlags {
  CLI::App app;
  TrainConfig config;
  TrainFlags flags;
};

void parse_train_flags(ParsedTrainFlags& parsed, std::vector<std::string> args) {
  parsed.flags = add_train_flags(&parsed.app, parsed.config);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector back to front
  parsed.app.parse(args);
}

TEST(Config, EveryTrainFlagReachesCheckpointJsonAndResume) {
  ParsedTrainFlags parsed;
  parse_train_flags(parsed, every_flag_changed());
  const nlohmann::json given = to_json(parsed.config), defaults = to_json(TrainConfig{});

  // Every flag of `train` is a row of the table (no flag outside it that the saved form misses).
  for (const CLI::Option* option : parsed.app.get_options()) {
    const std::string name = option->get_name();
    if (name == "--help" || name == "--trust-checkpoint") continue;
    const bool in_table = std::any_of(parsed.flags.keys.begin(), parsed.flags.keys.end(),
                                      [&](const auto& row) { return row.first == option; });
    EXPECT_TRUE(in_table) << name << " is not in train/config_fields.h";
  }
  // Each flag changed its own field, and the saved form keeps it.
  for (const auto& [option, key] : parsed.flags.keys) {
    EXPECT_EQ(option->count(), 1u) << option->get_name();
    EXPECT_NE(given.at(key), defaults.at(key)) << option->get_name() << " did not reach '" << key << "'";
  }
  EXPECT_EQ(to_json(config_from_json(given)), given) << "checkpoint.json round trip";

  // --resume FOLDER with every flag given again: the saved flags give way to each one.
  testing::ScratchDir dir;
  write_file_atomically(dir.path() / kRunConfigFile, defaults.dump());
  nlohmann::json resumed = to_json(resumed_config(dir.path().string(), parsed.flags.given(parsed.config)));
  nlohmann::json expected = given;
  for (auto* j : {&resumed, &expected}) j->erase("resume");  // the folder resumed, not a flag
  EXPECT_EQ(resumed, expected);
}

// Options typed where they enter: each text form reads back what it writes and refuses a text
// that names nothing, on the command line and in a saved configuration, before any data is read.
TEST(Config, TypedOptionsParseOnceAndReadBackWhatTheyWrite) {
  for (const char* text : {"cpu", "cuda", "cuda:0", "cuda:12"}) EXPECT_EQ(DeviceName::parse(text)->text(), text);
  for (const char* bad : {"", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:1:2", "cpu:0", "cuda:99999"})
    EXPECT_FALSE(DeviceName::parse(bad)) << bad;
  EXPECT_EQ(DeviceList::parse("cuda:0,cuda:1")->text(), "cuda:0,cuda:1");
  EXPECT_TRUE(DeviceList::parse("")->empty());
  for (const char* bad : {",", "cpu,", ",cpu", "cpu,,cpu", "cpu;cpu"}) EXPECT_FALSE(DeviceList::parse(bad)) << bad;
  EXPECT_EQ(StageCut::parse("4,7")->starts, (std::vector<int64_t>{4, 7}));
  EXPECT_EQ(StageCut::parse("4,7")->text(), "4,7");
  EXPECT_TRUE(StageCut::parse("")->empty());
  for (const char* bad : {"7,4", "0,4", "4,,7", "x", "4,", "-1", "4,4"}) EXPECT_FALSE(StageCut::parse(bad)) << bad;
  for (const std::string& name : supported_archs()) EXPECT_EQ(ArchName::parse(name)->text(), name);
  EXPECT_FALSE(ArchName::parse("resnet19"));
  for (const auto& [flag, bad] : std::vector<std::pair<std::string, std::string>>{
           {"--device", "gpu"}, {"--devices", "cpu;cpu"}, {"--stage-cut", "7,4"}, {"--arch", "resnet19"}}) {
    ParsedTrainFlags parsed;
    EXPECT_THROW(parse_train_flags(parsed, {flag, bad}), CLI::ParseError) << flag << " " << bad;
  }
  EXPECT_THROW(config_from_json({{"device", "gpu"}}), Error);
  EXPECT_THROW(config_from_json({{"arch", "resnet19"}}), Error);
}

// train_flags writes, for any configuration, the command line that makes it again.
TEST(Config, TrainFlagsMakeTheSameConfigurationAgain) {
  ParsedTrainFlags changed;
  parse_train_flags(changed, every_flag_changed());
  EXPECT_TRUE(train_flags(TrainConfig{}).empty());
  for (const TrainConfig& config : {TrainConfig{}, changed.config}) {
    ParsedTrainFlags again;
    parse_train_flags(again, train_flags(config));
    EXPECT_EQ(to_json(again.config), to_json(config));
  }
}

TEST(Config, ResumeWithoutFlagsKeepsTheSavedOnes) {
  ParsedTrainFlags saved;
  parse_train_flags(saved, every_flag_changed());
  testing::ScratchDir dir;
  write_file_atomically(dir.path() / kRunConfigFile, to_json(saved.config).dump());
  nlohmann::json resumed = to_json(resumed_config(dir.path().string(), nlohmann::json::object()));
  nlohmann::json expected = to_json(saved.config);
  expected["out"] = dir.path().string();  // a resumed run writes where it was
  for (auto* j : {&resumed, &expected}) j->erase("resume");
  EXPECT_EQ(resumed, expected);
}

TEST(Config, ReadsOlderFilesAndRefusesUnknownSpellings) {
  const TrainConfig old = config_from_json({{"data_split", "group"}, {"split", "4,7"}, {"backend", ""}});
  EXPECT_EQ(old.parallel.stage_cut.text(), "4,7") << "the pipeline cut was saved as 'split'";
  EXPECT_EQ(old.data.split, DataSplit::group);
  EXPECT_EQ(old.parallel.backend, Backend::automatic);
  EXPECT_EQ(config_from_json({{"amp", "bf16"}}).precision.amp, AmpMode::bf16);
  try {
    config_from_json({{"schedule", "step"}});
    FAIL() << "an unknown schedule was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("onecycle or cosine"), std::string::npos) << e.what();
  }
  EXPECT_THROW(config_from_json({{"amp", 16}}), Error);
}

// A recipe fills the flags the command line left alone, says what the run has, and is expanded
// once: a resumed run keeps its saved flags.
TEST(Config, ARecipeFillsTheFlagsNotGivenAndTheGivenOnesWin) {
  ParsedTrainFlags plain, recipe, recipe_and_size;
  parse_train_flags(plain, {});
  parse_train_flags(recipe, {"--recipe", "cpu-fast"});
  parse_train_flags(recipe_and_size, {"--recipe", "cpu-fast", "--image-size", "96"});
  const TrainConfig defaults = with_recipe(plain.config, plain.flags.given(plain.config));
  const TrainConfig fast = with_recipe(recipe.config, recipe.flags.given(recipe.config));
  const TrainConfig mine = with_recipe(recipe_and_size.config, recipe_and_size.flags.given(recipe_and_size.config));
  EXPECT_EQ(to_json(defaults), to_json(TrainConfig{})) << "no recipe: nothing changes";
  EXPECT_EQ(recipe_line(defaults), "");

  const nlohmann::json before = to_json(TrainConfig{}), after = to_json(fast);
  int changed = 0;
  for (const auto& [key, value] : after.items()) changed += key != "recipe" && value != before.at(key);
  EXPECT_GE(changed, 2) << "cpu-fast sets some flags";
  EXPECT_NE(fast.data.image_size, TrainConfig{}.data.image_size);
  EXPECT_EQ(mine.data.image_size, 96) << "a flag on the command line wins over the recipe";
  EXPECT_EQ(mine.optim.warmup_epochs, fast.optim.warmup_epochs) << "the rest of the recipe still applies";

  const std::string line = recipe_line(mine);
  EXPECT_EQ(line.rfind("recipe cpu-fast: ", 0), 0u) << line;
  EXPECT_NE(line.find("--image-size 96"), std::string::npos) << line;
  EXPECT_EQ(config_from_json(to_json(fast)).job.recipe, Recipe::cpu_fast) << "saved with the run";

  ParsedTrainFlags resumed;
  parse_train_flags(resumed, {"--resume", "runs/a", "--recipe", "cpu-fast"});
  EXPECT_THROW(with_recipe(resumed.config, resumed.flags.given(resumed.config)), UsageError);
}

TEST(Config, RanksCompareWhatShapesTheRunOnly) {
  TrainConfig c;
  c.data.root = "/node-a/tiles";
  const nlohmann::json shared = shared_by_ranks(c);
  for (const char* per_node : {"data", "groups", "cache_dir", "threads", "workers", "out", "quiet", "device", "resume"})
    EXPECT_FALSE(shared.contains(per_node)) << per_node;
  for (const char* shaping : {"lr", "batch_size", "image_size", "amp", "pipeline_stages", "stage_cut", "seed"})
    EXPECT_TRUE(shared.contains(shaping)) << shaping;
}

}  // namespace
}  // namespace histotrain
