#include "core/evaluation_text.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "core/evaluation_report.h"
#include "util/display_text.h"

namespace histotrain {

namespace {

const char* const kHeadlineMetrics[] = {"accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "log_loss"};

std::string fixed(const nlohmann::json& v, const char* format = "%.4f") {
  if (!v.is_number()) return "n/a";
  char text[32];
  std::snprintf(text, sizeof text, format, v.get<double>());
  return text;
}

std::string interval_text(const nlohmann::json& ci) {
  return ci.is_array() ? " (" + fixed(ci[0]) + "-" + fixed(ci[1]) + ")" : "";
}

std::vector<std::string> class_names(const nlohmann::json& report) {
  std::vector<std::string> names;
  for (const auto& c : report["classes"]) names.push_back(c.get<std::string>());
  return names;
}

size_t name_width(const std::vector<std::string>& names, size_t at_least) {
  size_t width = at_least;
  for (const auto& n : names) width = std::max(width, printable(n).size());
  return width;
}

std::string intervals_line(const nlohmann::json& ci) {
  if (!ci.is_object()) return "";
  return "95% intervals: bootstrap over " + std::to_string(ci["units"].get<int64_t>()) + " " +
         ci["unit"].get<std::string>() + "s, " + std::to_string(ci["resamples"].get<int>()) + " resamples, seed " +
         std::to_string(ci["seed"].get<uint64_t>());
}

// Rows: truth; columns: predicted, headed by the class names (or by numbers with a legend when
// the names would make the table wider than a terminal).
std::string confusion_text(const nlohmann::json& matrix, const std::vector<std::string>& names) {
  const size_t label = name_width(names, 17);
  size_t column = 7;
  for (const auto& n : names) column = std::max(column, printable(n).size() + 2);
  const bool numbered = label + column * names.size() > 110;
  if (numbered) column = 8;
  std::ostringstream out;
  const std::string corner = "truth \\ predicted";  // not a name from a file: shown as it is
  out << corner << std::string(label - corner.size(), ' ');
  for (size_t k = 0; k < names.size(); ++k) {
    const std::string head = numbered ? "[" + std::to_string(k + 1) + "]" : printable(names[k]);
    out << std::string(column > head.size() ? column - head.size() : 1, ' ') << head;
  }
  out << "\n";
  for (size_t t = 0; t < names.size(); ++t) {
    out << padded((numbered ? "[" + std::to_string(t + 1) + "] " : std::string()) + names[t], label);
    for (const auto& v : matrix[t]) {
      const std::string count = std::to_string(v.get<long long>());
      out << std::string(column > count.size() ? column - count.size() : 1, ' ') << count;
    }
    out << "\n";
  }
  return out.str();
}

std::string per_class_text(const nlohmann::json& report, const std::vector<std::string>& names) {
  const size_t width = name_width(names, 5);
  std::ostringstream out;
  char line[160];
  out << padded("class", width);
  std::snprintf(line, sizeof line, " %9s %9s %9s %9s %9s %8s\n", "precision", "recall", "f1", "auc", "ap", "support");
  out << line;
  for (const auto& name : names) {
    const auto& k = report["per_class"][name];
    out << padded(name, width);
    std::snprintf(line, sizeof line, " %9s %9s %9s %9s %9s %8lld\n", fixed(k["precision"]).c_str(),
                  fixed(k["recall"]).c_str(), fixed(k["f1"]).c_str(), fixed(k["auc"]).c_str(),
                  fixed(k["average_precision"]).c_str(), k["support"].get<long long>());
    out << line;
  }
  return out.str();
}

std::string operating_points_text(const nlohmann::json& points, const std::vector<std::string>& names) {
  if (!points.is_array() || points.empty()) return "";
  const size_t width = name_width(names, 5);
  std::ostringstream out;
  out << "operating points (the class against the rest; positive when its probability >= the threshold)\n"
      << padded("class", width) << " " << padded("threshold", 10) << " " << padded("sensitivity", 22) << " "
      << padded("specificity", 22) << " " << padded("PPV", 22) << " " << padded("NPV", 22) << " chosen by\n";
  for (const auto& p : points) {
    const auto& ci = p["confidence_intervals"];
    auto cell = [&](const char* m) {
      std::string text = fixed(p[m]) + (ci.is_object() ? interval_text(ci[m]) : "");
      return padded(text, 22);
    };
    out << padded(p["class"].get<std::string>(), width) << " " << padded(fixed(p["threshold"]), 10) << " "
        << cell("sensitivity") << " " << cell("specificity") << " " << cell("ppv") << " " << cell("npv") << " "
        << p["chosen_by"].get<std::string>() << "\n";
  }
  return out.str();
}

std::string headline_text(const nlohmann::json& section) {
  std::ostringstream out;
  for (const char* metric : kHeadlineMetrics)
    if (section.contains(metric)) out << padded(metric, 18) << " " << metric_with_interval(section, metric) << "\n";
  return out.str();
}

std::string by_group_text(const nlohmann::json& g, const std::vector<std::string>& names) {
  std::ostringstream out;
  out << "\nper group: " << g["units"].get<int64_t>() << " cases of " << g["groups"].get<int64_t>() << " groups ("
      << g["aggregation"].get<std::string>() << ")\n";
  if (g["mixed_label_groups"].get<int64_t>() > 0)
    out << g["mixed_label_groups"].get<int64_t>() << " group(s) hold tiles of several labels: one case per label\n";
  if (g["confidence_intervals"].is_object()) out << "(" << intervals_line(g["confidence_intervals"]) << ")\n";
  out << headline_text(g);
  const auto& vote = g["majority_vote"];
  out << "majority vote of the tiles instead: accuracy " << fixed(vote["accuracy"]) << ", balanced accuracy "
      << fixed(vote["balanced_accuracy"]) << "\n\n"
      << "confusion matrix per group (rows: truth, columns: predicted)\n"
      << confusion_text(g["confusion_matrix"], names);
  const std::string points = operating_points_text(g.value("operating_points", nlohmann::json()), names);
  if (!points.empty()) out << "\nper group, " << points;
  return out.str();
}

std::string markdown_table(const nlohmann::json& section, const std::vector<std::string>& names) {
  std::ostringstream md;
  md << "| metric | value |\n| --- | --- |\n";
  for (const char* metric : kHeadlineMetrics)
    if (section.contains(metric)) md << "| " << metric << " | " << metric_with_interval(section, metric) << " |\n";
  if (section.contains("ece")) md << "| ece (15 bins) | " << fixed(section["ece"]) << " |\n";
  md << "\nConfusion matrix (rows: truth, columns: predicted)\n\n| truth \\ predicted |";
  for (const auto& n : names) md << " " << markdown_cell(n) << " |";
  md << "\n| --- |";
  for (size_t k = 0; k < names.size(); ++k) md << " ---: |";
  md << "\n";
  for (size_t t = 0; t < names.size(); ++t) {
    md << "| " << markdown_cell(names[t]) << " |";
    for (const auto& v : section["confusion_matrix"][t]) md << " " << v.get<long long>() << " |";
    md << "\n";
  }
  return md.str();
}

std::string operating_points_markdown(const nlohmann::json& points) {
  if (!points.is_array() || points.empty()) return "";
  std::ostringstream md;
  md << "\nOperating points (the class against the rest; positive when its probability >= the threshold)\n\n"
     << "| class | threshold | chosen by | sensitivity | specificity | PPV | NPV |\n"
     << "| --- | ---: | --- | --- | --- | --- | --- |\n";
  for (const auto& p : points) {
    const auto& ci = p["confidence_intervals"];
    auto cell = [&](const char* m) { return fixed(p[m]) + (ci.is_object() ? interval_text(ci[m]) : ""); };
    md << "| " << markdown_cell(p["class"].get<std::string>()) << " | " << fixed(p["threshold"]) << " | "
       << p["chosen_by"].get<std::string>() << " | " << cell("sensitivity") << " | " << cell("specificity") << " | "
       << cell("ppv") << " | " << cell("npv") << " |\n";
  }
  for (const auto& p : points)
    if (p.contains("note")) {
      md << "\n" << p["note"].get<std::string>() << ".\n";
      break;
    }
  return md.str();
}

}  // namespace

std::string metric_with_interval(const nlohmann::json& section, const char* metric) {
  const auto& ci = section.value("confidence_intervals", nlohmann::json());
  return fixed(section.value(metric, nlohmann::json())) +
         (ci.is_object() ? interval_text(ci.value(metric, nlohmann::json())) : "");
}

std::string evaluation_console_text(const nlohmann::json& r) {
  const auto names = class_names(r);
  std::ostringstream out;
  out << "on " << r["images"].get<long long>() << " images\n";
  if (r["confidence_intervals"].is_object()) out << "(" << intervals_line(r["confidence_intervals"]) << ")\n";
  out << headline_text(r);
  const auto& cal = r["calibration"];
  out << padded("ece (15 bins)", 18) << " " << fixed(cal["ece_before"]) << " at temperature 1, "
      << fixed(cal["ece_after"]) << " at " << fixed(cal["temperature"], "%.3f") << " ("
      << cal["from"].get<std::string>() << "; " << (cal["applied"].get<bool>() ? "applied above" : "not applied above")
      << ")\n\n"
      << per_class_text(r, names) << "\nconfusion matrix (rows: truth, columns: predicted)\n"
      << confusion_text(r["confusion_matrix"], names);
  const std::string points = operating_points_text(r.value("operating_points", nlohmann::json()), names);
  if (!points.empty()) out << "\n" << points;
  if (r.contains("by_group")) out << by_group_text(r["by_group"], names);
  // Last, the line to quote.
  out << "\naccuracy " << metric_with_interval(r, "accuracy") << "; " << evaluation_line(r);
  if (r.contains("by_group"))
    out << "; per group accuracy " << metric_with_interval(r["by_group"], "accuracy") << " over "
        << r["by_group"]["units"].get<int64_t>() << " cases";
  out << "\n";
  return out.str();
}

std::string evaluation_markdown(const nlohmann::json& report) {
  const auto names = class_names(report);
  std::ostringstream md;
  md << "# Evaluation\n\n" << report["images"].get<int64_t>() << " images of "
     << markdown_cell(report.value("data", std::string("?"))) << "; checkpoint "
     << markdown_cell(report.value("checkpoint", std::string("?"))) << ".\n\n";
  if (report["confidence_intervals"].is_object()) md << intervals_line(report["confidence_intervals"]) << ".\n\n";
  md << "## Per tile\n\n" << markdown_table(report, names);
  const auto& cal = report["calibration"];
  md << "\nCalibration: ECE " << fixed(cal["ece_before"]) << " at temperature 1, " << fixed(cal["ece_after"]) << " at "
     << fixed(cal["temperature"], "%.3f") << " (" << cal["from"].get<std::string>() << "; "
     << (cal["applied"].get<bool>() ? "applied" : "not applied") << " to the metrics above).\n\n"
     << "| class | precision | recall | F1 | AUC | AP | support |\n"
     << "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& name : names) {
    const auto& k = report["per_class"][name];
    md << "| " << markdown_cell(name) << " | " << fixed(k["precision"]) << " | " << fixed(k["recall"]) << " | "
       << fixed(k["f1"]) << " | " << fixed(k["auc"]) << " | " << fixed(k["average_precision"]) << " | "
       << k["support"].get<int64_t>() << " |\n";
  }
  md << operating_points_markdown(report.value("operating_points", nlohmann::json()));
  if (report.contains("by_group")) {
    const auto& g = report["by_group"];
    md << "\n## Per group\n\n" << g["units"].get<int64_t>() << " cases of " << g["groups"].get<int64_t>()
       << " groups: " << g["aggregation"].get<std::string>() << ".";
    if (g["confidence_intervals"].is_object()) md << " " << intervals_line(g["confidence_intervals"]) << ".";
    md << "\n\n" << markdown_table(g, names) << "\nMajority vote of the tiles instead: accuracy "
       << fixed(g["majority_vote"]["accuracy"]) << ", balanced accuracy "
       << fixed(g["majority_vote"]["balanced_accuracy"]) << ".\n"
       << operating_points_markdown(g.value("operating_points", nlohmann::json()));
  }
  return md.str();
}

}  // namespace histotrain
