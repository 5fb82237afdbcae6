// Classes of very different sizes: LC25000's colon classes have a hundredth of the lung tiles in
// the development set, and pathology sets are rarely balanced. Two remedies, chosen by --balance:
// draw every class equally often (a sampler), or weight each class's loss by its rarity.
#pragma once
#include <cstdint>
#include <vector>

namespace histotrain {

// One epoch's order of `items` (indices into `labels`): as many draws as there are items, the
// classes present taking turns in a shuffled sequence so that each is drawn equally often (to
// one), and each class's items taken in a shuffled cycle, reshuffled when it is used up (rare
// classes repeat, frequent ones are subsampled). The same for every rank: it depends only on
// (seed, epoch), so sharding it splits one balanced order and a resume replays it.
std::vector<int64_t> class_balanced_order(const std::vector<int64_t>& items, const std::vector<int64_t>& labels,
                                          uint64_t seed, int64_t epoch);

// Per class, n / (classes present x n_k) over the labels of `items`: weights whose mean over the
// items is 1. Classes without items get 0 (they never appear as targets).
std::vector<double> inverse_frequency_weights(const std::vector<int64_t>& items, const std::vector<int64_t>& labels,
                                              int64_t classes);

}  // namespace histotrain
