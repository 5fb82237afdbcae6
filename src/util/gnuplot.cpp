#include "util/gnuplot.h"

#include "util/errors.h"
#include "util/process.h"

namespace histotrain {

std::string gnuplot_data_title(const std::string& name) {
  std::string title = name;
  for (char& ch : title)
    if (ch == '"' || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = ' ';
  return "\"" + title + "\"";
}

std::string gnuplot_literal(const std::string& text) {
  std::string literal = "'";
  for (char ch : text) {
    if (ch == '\'') literal += "''";
    else literal += static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f ? ' ' : ch;
  }
  return literal + "'";
}

std::string run_gnuplot(const std::filesystem::path& folder, const std::string& script, const std::string& log_name) {
  int status = 0;
  try {
    status = run_process({"gnuplot", script}, folder / log_name, folder);
  } catch (const Error&) {
    return "gnuplot is not installed: no plots (apt-get install gnuplot-nox)";
  }
  return status == 0 ? "" : "gnuplot failed: see " + log_name;
}

}  // namespace histotrain
