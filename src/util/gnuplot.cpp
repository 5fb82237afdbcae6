#include "util/gnuplot.h"

#include <stdlib.h>

#include "util/errors.h"
#include "util/files.h"
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

std::string gnuplot_output(const std::string& name) { return "set output outdir." + gnuplot_literal(name) + "\n"; }

namespace {

// Moves every file gnuplot wrote in `from` into `folder`, each renamed into place only over a
// regular file or nothing (a link or a device there is an Error, as for every file histotrain
// writes).
void move_outputs(const std::filesystem::path& from, const std::filesystem::path& folder) {
  for (const auto& entry : std::filesystem::directory_iterator(from)) {
    if (!entry.is_regular_file()) continue;
    const auto target = folder / entry.path().filename();
    replace_file_atomically(target, [&](const std::filesystem::path& tmp) { std::filesystem::rename(entry.path(), tmp); });
  }
}

}  // namespace

std::string run_gnuplot(const std::filesystem::path& folder, const std::string& script, const std::string& log_name) {
  // gnuplot follows links when it writes: a roc.png that links to a file elsewhere would be
  // written over. So its outputs go to a folder just made for them (mkdtemp: new, private, no
  // links in it), and are moved into place from there.
  std::string private_dir = (folder / ".gnuplot.XXXXXX").string();
  if (!::mkdtemp(private_dir.data())) throw Error("cannot create a folder for plots in " + folder.string());
  const std::filesystem::path outputs(private_dir);
  std::string why;
  try {
    const int status = run_process(
        {"gnuplot", "-e", "outdir=" + gnuplot_literal(outputs.filename().string() + "/"), script}, outputs / log_name,
        folder);
    why = status == 0 ? "" : "gnuplot failed: see " + log_name;
  } catch (const Error&) {
    why = "gnuplot is not installed: no plots (apt-get install gnuplot-nox)";
  }
  try {
    move_outputs(outputs, folder);
  } catch (const Error& e) {
    why = e.what();
  }
  std::error_code ignored;
  std::filesystem::remove_all(outputs, ignored);
  return why;
}

}  // namespace histotrain
