#include "data/class_balance.h"

#include <map>
#include <random>

namespace histotrain {

namespace {

template <class T>
void shuffle(std::vector<T>& values, std::mt19937_64& rng) {
  for (size_t i = values.size(); i > 1; --i) std::swap(values[i - 1], values[rng() % i]);
}

}  // namespace

std::vector<int64_t> class_balanced_order(const std::vector<int64_t>& items, const std::vector<int64_t>& labels,
                                          uint64_t seed, int64_t epoch) {
  std::map<int64_t, std::vector<int64_t>> by_class;  // ordered: the same sequence on every machine
  for (const int64_t item : items) by_class[labels[static_cast<size_t>(item)]].push_back(item);
  if (by_class.empty()) return {};
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(epoch) * 0x632be59bd9b4e019ull + 2);
  std::vector<std::vector<int64_t>*> classes;
  for (auto& [label, members] : by_class) {
    shuffle(members, rng);
    classes.push_back(&members);
  }
  std::vector<size_t> turns;  // which class each draw takes
  for (size_t i = 0; i < items.size(); ++i) turns.push_back(i % classes.size());
  shuffle(turns, rng);
  std::vector<size_t> next(classes.size(), 0);
  std::vector<int64_t> order;
  order.reserve(items.size());
  for (const size_t c : turns) {
    std::vector<int64_t>& members = *classes[c];
    if (next[c] == members.size()) {
      shuffle(members, rng);
      next[c] = 0;
    }
    order.push_back(members[next[c]++]);
  }
  return order;
}

std::vector<double> inverse_frequency_weights(const std::vector<int64_t>& items, const std::vector<int64_t>& labels,
                                              int64_t classes) {
  std::vector<double> count(static_cast<size_t>(classes), 0);
  for (const int64_t item : items) ++count[static_cast<size_t>(labels[static_cast<size_t>(item)])];
  int64_t present = 0;
  for (const double n : count) present += n > 0;
  std::vector<double> weights(static_cast<size_t>(classes), 0);
  for (size_t k = 0; k < count.size(); ++k)
    if (count[k] > 0) weights[k] = static_cast<double>(items.size()) / (static_cast<double>(present) * count[k]);
  return weights;
}

}  // namespace histotrain
