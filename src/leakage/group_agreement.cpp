#include "leakage/group_agreement.h"

#include <map>
#include <algorithm>

#include "util/errors.h"

namespace histotrain {

namespace {

double pairs_of(int64_t n) { return static_cast<double>(n) * static_cast<double>(n - 1) / 2; }

template <typename Key>
double pairs_within(const std::map<Key, int64_t>& sizes) {
  double total = 0;
  for (const auto& entry : sizes) total += pairs_of(entry.second);
  return total;
}

}  // namespace

GroupAgreement compare_groupings(const std::vector<std::string>& found, const std::vector<std::string>& reference) {
  if (found.size() != reference.size()) throw Error("compare_groupings: the groupings cover different tiles");
  std::map<std::string, int64_t> found_sizes, reference_sizes;
  std::map<std::pair<std::string, std::string>, int64_t> overlap_sizes;
  for (size_t i = 0; i < found.size(); ++i) {
    ++found_sizes[found[i]];
    ++reference_sizes[reference[i]];
    ++overlap_sizes[{found[i], reference[i]}];
  }
  const double together_in_both = pairs_within(overlap_sizes);
  const double together_found = pairs_within(found_sizes), together_reference = pairs_within(reference_sizes);
  GroupAgreement a;
  a.tiles = static_cast<int64_t>(found.size());
  a.found_groups = static_cast<int64_t>(found_sizes.size());
  a.reference_groups = static_cast<int64_t>(reference_sizes.size());
  // No pair put together is no wrong pair: precision 1. Nothing to recover: recall 1.
  a.pair_precision = together_found > 0 ? together_in_both / together_found : 1.0;
  a.pair_recall = together_reference > 0 ? together_in_both / together_reference : 1.0;
  const double expected = together_found * together_reference / std::max(1.0, pairs_of(a.tiles));
  const double best = (together_found + together_reference) / 2;
  a.adjusted_rand = best > expected ? (together_in_both - expected) / (best - expected) : 1.0;
  return a;
}

}  // namespace histotrain
