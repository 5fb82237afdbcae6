// Per-group (per-patient) metrics, operating points, and the evaluation's text as a person reads it.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/evaluation_report.h"
#include "core/evaluation_text.h"
#include "core/group_scores.h"
#include "core/operating_points.h"
#include "util/display_text.h"
#include "util/errors.h"

namespace histotrain {
namespace {

// Two classes; patient "a" has three tiles of class 0 (two called right), "b" two of class 1
// (both called 0), "c" one tile of class 0 and one of class 1.
ScoredImages patients(std::vector<std::string>& groups) {
  groups = {"a", "a", "a", "b", "b", "c", "c"};
  const std::vector<float> p = {0.9f, 0.1f, 0.8f, 0.2f, 0.3f, 0.7f,   // a
                                0.6f, 0.4f, 0.55f, 0.45f,             // b
                                0.2f, 0.8f, 0.1f, 0.9f};              // c
  return scored_images(p, {0, 0, 0, 1, 1, 0, 1}, groups, 2);
}

TEST(GroupScores, EachGroupIsOneCaseFromTheMeanOfItsTiles) {
  std::vector<std::string> groups;
  const ScoredImages tiles = patients(groups);
  const GroupScores g = scores_by_group(tiles, groups);
  ASSERT_EQ(g.units.size(), 4) << "a, b, and c twice (one case per label)";
  EXPECT_EQ(g.names, (std::vector<std::string>{"a", "b", "c", "c"}));
  EXPECT_EQ(g.tiles, (std::vector<int64_t>{3, 2, 1, 1}));
  EXPECT_NEAR(g.units.p(0, 0), (0.9 + 0.8 + 0.3) / 3, 1e-6);
  EXPECT_EQ(g.units.predicted(0), 0);
  EXPECT_EQ(g.vote[0], 0) << "two of three tiles say 0";
  EXPECT_EQ(g.units.predicted(1), 0) << "b's tiles average 0.575 for class 0";
  EXPECT_EQ(g.mixed_label_groups, 1);
  EXPECT_EQ(g.units.group_count, 3) << "the bootstrap still draws the three patients";
  EXPECT_EQ(g.units.groups[2], g.units.groups[3]) << "c's two cases are drawn together";
  EXPECT_NEAR(confusion_of(g.units).accuracy(), 0.5, 1e-12);  // a right, b wrong, c's 0 wrong, c's 1 right
}

TEST(GroupScores, TheEvaluationReportHasAPerGroupSectionWithGroupIntervals) {
  std::vector<std::string> groups;
  const ScoredImages tiles = patients(groups);
  EvalResult result;
  std::vector<float> logits;
  for (int64_t i = 0; i < tiles.size(); ++i)
    for (int64_t k = 0; k < 2; ++k) logits.push_back(static_cast<float>(std::log(tiles.p(i, k))));
  result.view_logits = torch::tensor(logits).view({tiles.size(), 1, 2});
  ReportOptions options;
  options.bootstrap = {200, 1};
  options.operating_points = {{"b-class", OperatingPointRequest::Kind::threshold, 0.5}};
  const auto report = evaluation_report(result, tiles.labels, groups, {"a-class", "b-class"}, options);
  ASSERT_TRUE(report.contains("by_group"));
  const auto& g = report["by_group"];
  EXPECT_EQ(g["units"], 4);
  EXPECT_EQ(g["groups"], 3);
  EXPECT_EQ(g["confidence_intervals"]["unit"], "group");
  EXPECT_NEAR(g["accuracy"].get<double>(), 0.5, 1e-6);
  EXPECT_TRUE(g["majority_vote"].contains("accuracy"));
  EXPECT_EQ(g["operating_points"].size(), 1u);
  EXPECT_EQ(report["operating_points"][0]["class"], "b-class");
  options.by_group = false;
  EXPECT_FALSE(evaluation_report(result, tiles.labels, groups, {"a-class", "b-class"}, options).contains("by_group"));
  EXPECT_FALSE(evaluation_report(result, tiles.labels, {}, {"a-class", "b-class"}, ReportOptions{}).contains("by_group"))
      << "without groups every tile is its own: nothing to gather";
}

// Ten images of class 1 with probabilities 0.1 .. 1.0 and ten of class 0 with 0.05 .. 0.5.
ScoredImages ramp() {
  std::vector<float> p;
  std::vector<int64_t> labels;
  for (int i = 1; i <= 10; ++i) {
    p.insert(p.end(), {1 - 0.1f * i, 0.1f * i});
    labels.push_back(1);
    p.insert(p.end(), {1 - 0.05f * i, 0.05f * i});
    labels.push_back(0);
  }
  return scored_images(p, labels, {}, 2);
}

TEST(OperatingPoints, AGivenThresholdCountsOneClassAgainstTheRest) {
  const auto points = operating_points_json(ramp(), {"no", "yes"},
                                            {{"yes", OperatingPointRequest::Kind::threshold, 0.45}}, {300, 2});
  const auto& p = points[0];
  EXPECT_EQ(p["tp"], 6);  // 0.5 .. 1.0
  EXPECT_EQ(p["fp"], 2);  // 0.45, 0.5
  EXPECT_EQ(p["fn"], 4);
  EXPECT_EQ(p["tn"], 8);
  EXPECT_NEAR(p["sensitivity"].get<double>(), 0.6, 1e-9);
  EXPECT_NEAR(p["specificity"].get<double>(), 0.8, 1e-9);
  EXPECT_NEAR(p["ppv"].get<double>(), 0.75, 1e-9);
  EXPECT_NEAR(p["npv"].get<double>(), 8.0 / 12, 1e-9);
  const auto& ci = p["confidence_intervals"]["sensitivity"];
  EXPECT_LE(ci[0].get<double>(), 0.6);
  EXPECT_GE(ci[1].get<double>(), 0.6);
}

TEST(OperatingPoints, ATargetSensitivityFindsTheHighestThresholdReachingIt) {
  const auto points = operating_points_json(ramp(), {"no", "yes"},
                                            {{"yes", OperatingPointRequest::Kind::target_sensitivity, 0.95}}, {0, 0});
  EXPECT_NEAR(points[0]["threshold"].get<double>(), 0.1, 1e-6) << "all ten positives are needed for 95%";
  EXPECT_GE(points[0]["sensitivity"].get<double>(), 0.95);
  EXPECT_TRUE(points[0].contains("note")) << "a threshold chosen on the same images is said to be optimistic";
  const auto eighty = operating_points_json(ramp(), {"no", "yes"},
                                            {{"yes", OperatingPointRequest::Kind::target_sensitivity, 0.8}}, {0, 0});
  EXPECT_NEAR(eighty[0]["threshold"].get<double>(), 0.3, 1e-6);
  EXPECT_NEAR(eighty[0]["sensitivity"].get<double>(), 0.8, 1e-9);
}

TEST(OperatingPoints, RequestsAreParsedOnceAndCheckedAtTheEdge) {
  const auto r = parse_operating_point("lung=aca=0.3", OperatingPointRequest::Kind::threshold, "--threshold");
  EXPECT_EQ(r.class_name, "lung=aca");
  EXPECT_DOUBLE_EQ(r.value, 0.3);
  for (const char* bad : {"lung_aca", "lung_aca=", "=0.3", "lung_aca=1.5", "lung_aca=-0.1", "lung_aca=nan", "x=0.3y"})
    EXPECT_THROW(parse_operating_point(bad, OperatingPointRequest::Kind::threshold, "--threshold"), UsageError) << bad;
  EXPECT_THROW(operating_points_json(ramp(), {"no", "yes"}, {{"maybe", OperatingPointRequest::Kind::threshold, 0.5}},
                                     {0, 0}),
               Error);
}

// Column starts of a line: where each run of spaces ends.
std::vector<size_t> column_starts(const std::string& line) {
  std::vector<size_t> starts;
  for (size_t i = 1; i < line.size(); ++i)
    if (line[i - 1] == ' ' && line[i] != ' ') starts.push_back(i);
  return starts;
}

TEST(EvaluationText, TablesStayAlignedWithLongClassNamesAndTheMatrixIsLabelled) {
  const std::vector<std::string> names = {"adenocarcinoma_of_the_lung_poorly_differentiated", "benign"};
  ConfusionMatrix m(2);
  m.add(0, 0, 7);
  m.add(0, 1, 3);
  m.add(1, 1, 10);
  nlohmann::json report = m.to_json(names);
  for (const auto& n : names) report["per_class"][n].update({{"auc", 0.9}, {"average_precision", 0.8}});
  report["calibration"] = {{"ece_before", 0.1}, {"ece_after", 0.05}, {"temperature", 1.5}, {"from", "test"},
                           {"applied", false}};
  report["confidence_intervals"] = nullptr;
  report["macro_auc"] = 0.9;
  report["log_loss"] = 0.3;
  report["calibration"]["ece_bins"] = 15;
  const std::string text = evaluation_console_text(report);
  std::istringstream lines(text);
  std::vector<std::string> table;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("class ", 0) == 0 || line.rfind(names[0], 0) == 0 || line.rfind(names[1] + " ", 0) == 0)
      table.push_back(line);
  ASSERT_GE(table.size(), 3u) << text;
  // Every row of the per-class table as wide as its header, its columns starting at the same places.
  EXPECT_EQ(table[0].size(), table[1].size()) << text;
  EXPECT_EQ(column_starts(table[1]), column_starts(table[2])) << text;
  EXPECT_EQ(table[1].size(), table[2].size()) << text;
  EXPECT_NE(text.find("truth \\ predicted"), std::string::npos) << text;
  EXPECT_NE(text.find(names[0] + " "), std::string::npos) << "the matrix's rows are named:\n" << text;
}

TEST(EvaluationText, NamesAreEscapedForTerminalsAndMarkdown) {
  EXPECT_EQ(printable("a\nb\x1b[31m"), "a\\nb\\x1b[31m");
  EXPECT_EQ(markdown_cell("x|y\r\nz"), "x\\|y\\r\\nz");
  EXPECT_EQ(padded("ab", 4), "ab  ");
  EXPECT_EQ(padded("é", 3), "é  ") << "columns, not bytes";
}

}  // namespace
}  // namespace histotrain
