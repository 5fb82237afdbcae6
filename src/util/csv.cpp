#include "util/csv.h"

#include <cstdio>

#include "util/errors.h"

namespace histotrain {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos && (text.empty() || (text.front() != ' ' && text.back() != ' ')))
    return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

namespace {

void trim_spaces(std::string& field) {
  const size_t first = field.find_first_not_of(' ');
  if (first == std::string::npos) {
    field.clear();
    return;
  }
  field.erase(field.find_last_not_of(' ') + 1);
  field.erase(0, first);
}

}  // namespace

std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& source, size_t max_field) {
  std::vector<CsvRecord> records;
  CsvRecord record;
  std::string field;
  bool quoted = false, was_quoted = false;
  size_t line = 1;
  record.line = 1;
  auto end_field = [&] {
    if (!was_quoted) trim_spaces(field);
    record.fields.push_back(std::move(field));
    field.clear();
    was_quoted = false;
  };
  auto end_record = [&] {
    end_field();
    const bool blank = record.fields.size() == 1 && record.fields[0].empty();
    if (!blank) records.push_back(std::move(record));
    record = CsvRecord{};
    record.line = line;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (field.size() > max_field)
      throw Error(source + ", line " + std::to_string(line) + ": a field longer than " + std::to_string(max_field) +
                  " bytes");
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && field.find_first_not_of(' ') == std::string::npos) {
      field.clear();
      quoted = was_quoted = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      // CRLF: the LF ends the record. (A CR inside quotes is the field's own.)
    } else if (c == '\n') {
      ++line;
      end_record();
    } else {
      field += c;
    }
  }
  if (quoted) throw Error(source + ", line " + std::to_string(record.line) + ": a quoted field is never closed");
  // A CR that ends the text was read outside quotes (inside, the quote would be open): a line end.
  if (!text.empty() && text.back() == '\r' && !field.empty() && field.back() == '\r') field.pop_back();
  end_record();
  return records;
}

std::string csv_text_for_reading(std::string text, const std::string& source) {
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) {
    text.erase(0, 3);
    std::fprintf(stderr, "note: %s starts with a UTF-8 byte-order mark; it is read without it\n", source.c_str());
  }
  if (text.find('\n') == std::string::npos && text.find('\r') != std::string::npos)
    throw Error(source + " ends its lines with CR alone (classic Mac OS): save it with LF or CRLF line ends");
  return text;
}

}  // namespace histotrain
