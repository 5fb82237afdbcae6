// Plots drawn by gnuplot from data files and a script written beside them. Titles and labels come
// from other people's files (class names, study names): they are quoted here so that no name can
// end a string and become a gnuplot command, and gnuplot is started from its words, never
// through a shell.
#pragma once
#include <filesystem>
#include <string>

namespace histotrain {

// A title in a gnuplot data file: double-quoted, quotes and control characters made spaces.
std::string gnuplot_data_title(const std::string& name);

// A string literal for a gnuplot script: single-quoted (a quote doubled), control characters
// made spaces, so no line break can end the command it stands in.
std::string gnuplot_literal(const std::string& text);

// "set output outdir.'NAME'": every plot script names its outputs this way, and run_gnuplot sets
// outdir to a folder of its own (see there).
std::string gnuplot_output(const std::string& name);

// Runs `gnuplot SCRIPT` in `folder` (its log in folder/LOG_NAME). Its outputs are written in a
// private folder and then moved into `folder`, never through a link already there. "" when it
// drew; else why not, as a sentence for a report ("gnuplot is not installed: ...").
std::string run_gnuplot(const std::filesystem::path& folder, const std::string& script, const std::string& log_name);

}  // namespace histotrain
