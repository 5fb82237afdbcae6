// A patient's (a slide's, a source image's) prediction from its tiles. Pathologists report per
// patient: 30 tiles of one patient are one case, not 30. Each group's tiles are gathered into one
// unit whose probabilities are the mean of its tiles' (the group's prediction is the class with
// the highest mean), and every metric of scored_metrics.h applies to the units unchanged. The
// majority vote of the tiles' predictions is kept beside it, for those who report that instead.
//
// A group whose tiles carry more than one label (a patient with tumour and normal tiles) gives
// one unit per label: "this patient's tumour tiles" is a case with one truth. Units of one group
// keep that group as their bootstrap unit, so the intervals still resample whole patients.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "core/scored_metrics.h"

namespace histotrain {

struct GroupScores {
  ScoredImages units;              // one row per (group, label); `groups` indexes the groups
  std::vector<std::string> names;  // per unit, its group's name
  std::vector<int64_t> tiles;      // per unit, how many tiles it gathers
  std::vector<int64_t> vote;       // per unit, the class most of its tiles predict (ties: the higher mean)
  int64_t mixed_label_groups = 0;  // groups that gave more than one unit
};

// `group_names`: per tile, its group's name (the same vector the tiles were scored with).
GroupScores scores_by_group(const ScoredImages& tiles, const std::vector<std::string>& group_names);

// The majority vote's confusion matrix over the units.
ConfusionMatrix vote_confusion(const GroupScores& g);

// Whether a per-group report says anything a per-tile one does not: some group has several tiles.
bool groups_gather_tiles(const ScoredImages& tiles);

// The aggregation rule, in words, for reports.
extern const char* const kGroupAggregation;

}  // namespace histotrain
