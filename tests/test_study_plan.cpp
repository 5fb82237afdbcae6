// The study's plan: the default for a machine, and plans that cannot work refused before anything
// runs.
#include <gtest/gtest.h>

#include "bench/study_plan.h"
#include "test_util.h"
#include "util/errors.h"

namespace histotrain {
namespace {

TEST(StudyPlan, TheDefaultFitsTheMachine) {
  const StudyPlan two = default_plan(2, false);
  std::vector<std::string> names;
  for (const auto& c : two.configs) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"serial", "threads-2", "ranks-2", "pipeline-2x4", "bf16-cl-2", "prefetch-2"}));
  for (const auto& c : two.configs) EXPECT_EQ(infeasible_reason(c, two, 2, false), "") << c.name;
  const StudyPlan big = default_plan(16, true);
  std::map<std::string, int> workers;
  for (const auto& c : big.configs) workers[c.name] = c.workers();
  EXPECT_EQ(workers.at("ranks-16"), 16);
  EXPECT_EQ(workers.at("ranks-8"), 8);
  for (const char* gpu : {"cuda-fp32", "cuda-bf16-cl", "cuda-fp16-cl"}) EXPECT_TRUE(workers.count(gpu)) << gpu;
  EXPECT_EQ(big.decode_workers, (std::vector<int>{1, 2, 4, 8, 16}));
  // The same plan on a smaller machine: what does not fit is named, not attempted.
  for (const auto& c : big.configs)
    if (c.name == "ranks-16") EXPECT_NE(infeasible_reason(c, big, 2, false).find("needs 16 cores"), std::string::npos);
    else if (c.cuda) EXPECT_NE(infeasible_reason(c, big, 2, false).find("CUDA"), std::string::npos);
  // A plan survives its JSON, its architecture typed on the way.
  EXPECT_EQ(to_json(plan_from_json(to_json(big))), to_json(big));
  const StudyPlan resnet50 = plan_from_json(nlohmann::json::parse(R"({"arch": "resnet50", "configs": [{"name": "serial"}]})"));
  EXPECT_EQ(resnet50.arch.text(), "resnet50");
  EXPECT_EQ(plan_from_json(to_json(resnet50)).arch.text(), "resnet50");
}

TEST(StudyPlan, BadPlansAreUsageErrors) {
  const auto error_of = [](const std::string& text) {
    try {
      plan_from_json(nlohmann::json::parse(text));
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error_of(R"({"configs": [{"name": "threads-2", "threads": 2}]})").find("first configuration must be"), std::string::npos);
  EXPECT_NE(error_of(R"({"configs": [{"name": "serial"}], "stpes": 3})").find("unknown field 'stpes'"), std::string::npos);
  EXPECT_NE(error_of(R"({"configs": [{"name": "serial"}, {"name": "serial"}]})").find("two configurations"), std::string::npos);
  EXPECT_NE(error_of(R"({"configs": [{"name": "serial"}], "accuracy_configs": ["fast"]})").find("'fast'"), std::string::npos);
  EXPECT_NE(error_of(R"({"configs": [{"name": "serial", "ranks": "two"}]})").find("wrong type"), std::string::npos);
  // Names become parts of file names, and fields become arguments: nothing in them may be a path
  // or more than one word.
  for (const char* name : {"/some/where/victim", "../up", "a b", "", ".hidden", "x/y", "tab\tname"})
    EXPECT_NE(error_of(R"({"configs": [{"name": "serial"}, {"name": )" + nlohmann::json(name).dump() + "}]}")
                  .find("configuration name"),
              std::string::npos)
        << name;
  EXPECT_NE(error_of(R"({"arch": "resnet18 --epochs 0; touch /tmp/x; exit 3 #", "configs": [{"name": "serial"}]})")
                .find("arch must be one of"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"arch": 18, "configs": [{"name": "serial"}]})").find("wrong type"), std::string::npos);
  EXPECT_NE(error_of(R"({"configs": [{"name": "serial", "amp": "none; touch /tmp/x"}]})").find("amp must be"),
            std::string::npos);
}

}  // namespace
}  // namespace histotrain
