#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "data/groups.h"
#include "test_util.h"
#include "util/errors.h"

namespace histotrain {
namespace {

TEST(Groups, ReadsCsvByHeaderNames) {
  testing::ScratchDir dir;
  std::ofstream(dir / "g.csv") << "group_id,filename,label\ng1,a.jpeg,lung_n\r\ng2,b.jpeg,\n";
  const auto groups = read_groups_csv((dir / "g.csv").string());
  EXPECT_EQ(groups.at("a.jpeg"), "g1");
  EXPECT_EQ(groups.at("b.jpeg"), "g2");
  std::ofstream(dir / "bad.csv") << "file,group\nx,y\n";
  EXPECT_THROW(read_groups_csv((dir / "bad.csv").string()), Error);
  EXPECT_THROW(read_groups_csv((dir / "missing.csv").string()), Error);
}

// 3 classes, groups of 4 near-copies each.
struct GroupedData {
  std::vector<int64_t> labels;
  std::vector<std::string> groups;
};
GroupedData grouped(int groups_per_class) {
  GroupedData d;
  for (int c = 0; c < 3; ++c)
    for (int g = 0; g < groups_per_class; ++g)
      for (int k = 0; k < 4; ++k) {
        d.labels.push_back(c);
        d.groups.push_back(std::to_string(c) + "-" + std::to_string(g));
      }
  return d;
}

TEST(Groups, SplitKeepsEveryGroupOnOneSideAndIsStratified) {
  const GroupedData d = grouped(25);
  const Split split = split_by_group(d.labels, d.groups, 0.2, 3);
  std::set<std::string> train_groups, val_groups;
  for (int64_t i : split.train) train_groups.insert(d.groups[i]);
  for (int64_t i : split.val) val_groups.insert(d.groups[i]);
  for (const auto& g : val_groups) EXPECT_EQ(train_groups.count(g), 0u) << g << " is on both sides";
  EXPECT_EQ(split.train.size() + split.val.size(), d.labels.size());
  std::map<int64_t, int> val_per_class;
  for (int64_t i : split.val) ++val_per_class[d.labels[i]];
  for (int c = 0; c < 3; ++c) EXPECT_EQ(val_per_class[c], 20) << "class " << c;  // 20% of 100
}

TEST(Groups, SplitIsDeterministicPerSeedAndChangesWithIt) {
  const GroupedData d = grouped(25);
  EXPECT_EQ(split_by_group(d.labels, d.groups, 0.2, 1).val, split_by_group(d.labels, d.groups, 0.2, 1).val);
  EXPECT_NE(split_by_group(d.labels, d.groups, 0.2, 1).val, split_by_group(d.labels, d.groups, 0.2, 2).val);
}

TEST(Groups, ClassWithASingleGroupStaysInTraining) {
  const GroupedData d = grouped(1);
  const Split split = split_by_group(d.labels, d.groups, 0.5, 0);
  EXPECT_TRUE(split.val.empty());
  EXPECT_EQ(split.train.size(), d.labels.size());
}

TEST(Groups, ZeroFractionMeansNoValidation) {
  const GroupedData d = grouped(10);
  EXPECT_TRUE(split_by_group(d.labels, d.groups, 0.0, 0).val.empty());
}

}  // namespace
}  // namespace histotrain
