// JSON from other people's files (plans, studies, reports, checkpoints, caches): bounded in size
// (read_regular_file's rules) and in nesting. nlohmann's parser is iterative, but code that walks
// a document, and dump(), recurse: a file nested 10^4 deep crashed `report` with a stack
// overflow. Every error names the file, and the field where there is one.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

// No file histotrain reads nests deeper than this (its own files reach 6).
constexpr int kMaxJsonDepth = 64;

// Parses `text` read from `source` (a file name, for the message); throws Error when it is not
// JSON or nests deeper than kMaxJsonDepth.
nlohmann::json parse_json(const std::string& text, const std::string& source);

// The same, as null when the text is not such JSON (caches, which are measured again instead).
nlohmann::json parse_json_or_null(const std::string& text);

// A whole JSON file of at most `max_bytes`.
nlohmann::json read_json_file(const std::filesystem::path& path, uint64_t max_bytes = kMaxTextFileBytes);

// Error "FILE: field 'KEY' ..." for a field of the wrong type or value.
Error json_field_error(const std::string& source, const std::string& key, const std::string& what);

}  // namespace histotrain
