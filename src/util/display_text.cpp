#include "util/display_text.h"

#include <cstdio>

namespace histotrain {

std::string printable(const std::string& name) {
  std::string out;
  for (const char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", byte);
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

std::string markdown_cell(const std::string& name) {
  std::string out;
  for (const char c : printable(name)) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string padded(const std::string& name, size_t width) {
  std::string out = printable(name);
  // Columns, not bytes: a UTF-8 continuation byte takes none.
  size_t columns = 0;
  for (const char c : out) columns += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  if (columns < width) out.append(width - columns, ' ');
  return out;
}

}  // namespace histotrain
