// CSV as RFC 4180 writes it: fields with commas, quotes or line breaks are quoted, quotes doubled.
// Whatever bytes a file name holds, it is written as one field and read back as itself.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace histotrain {

// A field as it is when plain, else quoted.
std::string csv_field(const std::string& text);

struct CsvRecord {
  size_t line = 0;  // where the record starts, from 1
  std::vector<std::string> fields;
};

// The records of a whole CSV text; blank lines skipped, a CR before each line break dropped,
// spaces around unquoted fields trimmed. Throws Error naming `source` and the line for an
// unterminated quote or a field over `max_field` bytes.
// A CSV's text as a person's spreadsheet saved it, ready for parse_csv: a UTF-8 byte-order mark
// (Excel writes one) is dropped with a note on stderr saying so; CR-only line ends (classic Mac
// OS) are an Error saying so, not one long line that matches no column.
std::string csv_text_for_reading(std::string text, const std::string& source);

std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& source, size_t max_field = 64 << 10);

}  // namespace histotrain
