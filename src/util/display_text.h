// Names from other people's files (class names, file names, groups) shown to a person: on a
// terminal a control character in a name could move the cursor or rewrite the screen, and in a
// markdown table a '|' or a line break would end the cell. These make any name safe to show and
// still recognisable.
#pragma once
#include <string>

namespace histotrain {

// Control characters (below 0x20, and 0x7f) as \n, \r, \t or \xNN; a backslash as \\.
std::string printable(const std::string& name);

// A markdown table cell: printable(), with '|' escaped as \|.
std::string markdown_cell(const std::string& name);

// printable(name) padded with spaces to `width` columns (longer names are left whole).
std::string padded(const std::string& name, size_t width);

}  // namespace histotrain
