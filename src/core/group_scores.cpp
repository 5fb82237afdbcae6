#include "core/group_scores.h"

#include <map>
#include <stdexcept>

namespace histotrain {

const char* const kGroupAggregation =
    "per group (and label), the mean of its tiles' probabilities; the class with the highest mean is the group's "
    "prediction";

namespace {

// Each unit's tiles, in order of first appearance: (group id, label) -> unit index.
std::vector<int64_t> unit_of_each_tile(const ScoredImages& tiles, int64_t& units) {
  std::map<std::pair<int64_t, int64_t>, int64_t> index;
  std::vector<int64_t> unit(static_cast<size_t>(tiles.size()));
  for (int64_t i = 0; i < tiles.size(); ++i) {
    const auto [at, added] = index.emplace(std::make_pair(tiles.groups[i], tiles.labels[i]),
                                           static_cast<int64_t>(index.size()));
    unit[i] = at->second;
  }
  units = static_cast<int64_t>(index.size());
  return unit;
}

int64_t majority(const std::vector<int64_t>& votes, const ScoredImages& units, int64_t u) {
  int64_t best = 0;
  for (int64_t k = 1; k < units.classes; ++k)
    if (votes[k] > votes[best] || (votes[k] == votes[best] && units.p(u, k) > units.p(u, best))) best = k;
  return best;
}

}  // namespace

GroupScores scores_by_group(const ScoredImages& tiles, const std::vector<std::string>& group_names) {
  if (!group_names.empty() && group_names.size() != static_cast<size_t>(tiles.size()))
    throw std::invalid_argument("scores_by_group: one group name per tile");
  int64_t count = 0;
  const std::vector<int64_t> unit = unit_of_each_tile(tiles, count);
  const int64_t K = tiles.classes;
  GroupScores g;
  g.units.classes = K;
  g.units.labels.assign(static_cast<size_t>(count), 0);
  g.units.groups.assign(static_cast<size_t>(count), 0);
  g.units.probabilities.assign(static_cast<size_t>(count * K), 0.0);
  g.names.assign(static_cast<size_t>(count), "");
  g.tiles.assign(static_cast<size_t>(count), 0);
  std::vector<std::vector<int64_t>> votes(static_cast<size_t>(count), std::vector<int64_t>(static_cast<size_t>(K), 0));
  for (int64_t i = 0; i < tiles.size(); ++i) {
    const int64_t u = unit[i];
    g.units.labels[u] = tiles.labels[i];
    g.units.groups[u] = tiles.groups[i];
    g.names[u] = group_names.empty() ? std::to_string(i) : group_names[i];
    ++g.tiles[u];
    ++votes[u][tiles.predicted(i)];
    for (int64_t k = 0; k < K; ++k) g.units.probabilities[u * K + k] += tiles.p(i, k);
  }
  std::map<int64_t, int64_t> units_per_group;
  for (int64_t u = 0; u < count; ++u) {
    for (int64_t k = 0; k < K; ++k) g.units.probabilities[u * K + k] /= static_cast<double>(g.tiles[u]);
    ++units_per_group[g.units.groups[u]];
  }
  g.units.group_count = tiles.group_count;
  for (int64_t u = 0; u < count; ++u) g.vote.push_back(majority(votes[u], g.units, u));
  for (const auto& [group, n] : units_per_group) g.mixed_label_groups += n > 1;
  return g;
}

ConfusionMatrix vote_confusion(const GroupScores& g) {
  ConfusionMatrix m(g.units.classes);
  for (int64_t u = 0; u < g.units.size(); ++u) m.add(g.units.labels[u], g.vote[u]);
  return m;
}

bool groups_gather_tiles(const ScoredImages& tiles) { return tiles.group_count < tiles.size(); }

}  // namespace histotrain
