#include "core/metrics.h"

#include <stdexcept>

namespace histotrain {

ConfusionMatrix::ConfusionMatrix(int64_t classes)
    : classes_(classes), counts_(static_cast<size_t>(classes * classes), 0) {}

void ConfusionMatrix::add(int64_t truth, int64_t predicted, int64_t n) {
  if (truth < 0 || truth >= classes_ || predicted < 0 || predicted >= classes_)
    throw std::out_of_range("confusion matrix index out of range");
  counts_[truth * classes_ + predicted] += n;
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  if (other.classes_ != classes_) throw std::invalid_argument("confusion matrices of different sizes");
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

int64_t ConfusionMatrix::total() const {
  int64_t n = 0;
  for (int64_t c : counts_) n += c;
  return n;
}

int64_t ConfusionMatrix::row_sum(int64_t k) const {
  int64_t n = 0;
  for (int64_t j = 0; j < classes_; ++j) n += count(k, j);
  return n;
}

int64_t ConfusionMatrix::column_sum(int64_t k) const {
  int64_t n = 0;
  for (int64_t i = 0; i < classes_; ++i) n += count(i, k);
  return n;
}

double ConfusionMatrix::accuracy() const {
  int64_t correct = 0;
  for (int64_t k = 0; k < classes_; ++k) correct += count(k, k);
  const int64_t n = total();
  return n ? static_cast<double>(correct) / n : 0.0;
}

double ConfusionMatrix::precision(int64_t k) const {
  const int64_t predicted = column_sum(k);
  return predicted ? static_cast<double>(count(k, k)) / predicted : 0.0;
}

double ConfusionMatrix::recall(int64_t k) const {
  const int64_t actual = row_sum(k);
  return actual ? static_cast<double>(count(k, k)) / actual : 0.0;
}

double ConfusionMatrix::f1(int64_t k) const {
  const double p = precision(k), r = recall(k);
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

double ConfusionMatrix::macro_f1() const {
  double sum = 0;
  int64_t present = 0;
  for (int64_t k = 0; k < classes_; ++k) {
    if (row_sum(k) == 0 && column_sum(k) == 0) continue;  // absent from this evaluation
    sum += f1(k);
    ++present;
  }
  return present ? sum / present : 0.0;
}

double ConfusionMatrix::balanced_accuracy() const {
  double sum = 0;
  int64_t present = 0;
  for (int64_t k = 0; k < classes_; ++k) {
    if (row_sum(k) == 0) continue;
    sum += recall(k);
    ++present;
  }
  return present ? sum / present : 0.0;
}

nlohmann::json ConfusionMatrix::to_json(const std::vector<std::string>& class_names) const {
  nlohmann::json per_class = nlohmann::json::object();
  nlohmann::json matrix = nlohmann::json::array();
  for (int64_t k = 0; k < classes_; ++k) {
    per_class[class_names[k]] = {
        {"precision", precision(k)}, {"recall", recall(k)}, {"f1", f1(k)}, {"support", row_sum(k)}};
    nlohmann::json row = nlohmann::json::array();
    for (int64_t j = 0; j < classes_; ++j) row.push_back(count(k, j));
    matrix.push_back(row);
  }
  return {{"accuracy", accuracy()}, {"balanced_accuracy", balanced_accuracy()}, {"macro_f1", macro_f1()}, {"images", total()},
          {"classes", class_names}, {"per_class", per_class}, {"confusion_matrix", matrix}};
}

}  // namespace histotrain
