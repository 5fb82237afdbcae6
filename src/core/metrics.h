// Classification metrics from a confusion matrix. Ratios are taken only here, from counts, so
// that counts from several ranks or batches can be summed first: metrics stay global.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace histotrain {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int64_t classes = 0);

  void add(int64_t truth, int64_t predicted, int64_t n = 1);
  void merge(const ConfusionMatrix& other);

  int64_t classes() const { return classes_; }
  int64_t count(int64_t truth, int64_t predicted) const { return counts_[truth * classes_ + predicted]; }
  int64_t total() const;
  // Row-major [truth][predicted]; exposed so ranks can all-reduce it.
  std::vector<int64_t>& counts() { return counts_; }

  double accuracy() const;
  double precision(int64_t k) const;  // 0 when nothing was predicted as k
  double recall(int64_t k) const;     // 0 when k never occurs
  double f1(int64_t k) const;
  // Mean F1 over the classes that occur in the data (or are predicted).
  double macro_f1() const;
  // Mean recall over the classes that occur in the data (scikit-learn's balanced_accuracy_score).
  double balanced_accuracy() const;

  // {"accuracy", "balanced_accuracy", "macro_f1", "images", "classes", "per_class": {name: {precision, recall, f1,
  // support}}, "confusion_matrix": rows of counts, truth first}
  nlohmann::json to_json(const std::vector<std::string>& class_names) const;

 private:
  int64_t row_sum(int64_t k) const;
  int64_t column_sum(int64_t k) const;
  int64_t classes_;
  std::vector<int64_t> counts_;
};

}  // namespace histotrain
