// JSON text of values that may hold names from the file system. A Linux name may hold any byte
// but '/' and NUL, and JSON holds only UTF-8: a byte that is not UTF-8 is written as U+FFFD
// instead of making nlohmann::json throw half-way through a results file.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace histotrain {

inline std::string json_text(const nlohmann::json& value, int indent = -1) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Whether `text` is valid UTF-8 (so that it reads back from JSON as itself).
inline bool is_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

}  // namespace histotrain
