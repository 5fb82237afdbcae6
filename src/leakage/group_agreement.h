// How well a found grouping agrees with a reference one (e.g. published source-image groups),
// counted over pairs of tiles: the measures near-copy detection is judged by.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace histotrain {

struct GroupAgreement {
  double pair_precision = 0;  // pairs put together that the reference also puts together
  double pair_recall = 0;     // pairs the reference puts together that were found together
  double adjusted_rand = 0;   // agreement of the two partitions, 0 for chance, 1 for identical
  int64_t tiles = 0, found_groups = 0, reference_groups = 0;
};

// `found[i]` and `reference[i]` name tile i's group in each grouping.
GroupAgreement compare_groupings(const std::vector<std::string>& found, const std::vector<std::string>& reference);

}  // namespace histotrain
