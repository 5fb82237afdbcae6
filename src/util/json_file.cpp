#include "util/json_file.h"

#include "util/errors.h"

namespace histotrain {

namespace {

struct TooDeep {};

// Parses with a callback that stops the parser at the first container deeper than the limit.
nlohmann::json parse_bounded(const std::string& text) {
  const nlohmann::json::parser_callback_t depth_limit = [](int depth, nlohmann::json::parse_event_t event,
                                                           nlohmann::json&) {
    if ((event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw TooDeep{};
    return true;
  };
  return nlohmann::json::parse(text, depth_limit);
}

}  // namespace

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  try {
    return parse_bounded(text);
  } catch (const TooDeep&) {
    throw Error(source + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels: not a file histotrain wrote");
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + " is not valid JSON (" + e.what() + ")");
  }
}

nlohmann::json parse_json_or_null(const std::string& text) {
  try {
    return parse_bounded(text);
  } catch (const TooDeep&) {
  } catch (const nlohmann::json::exception&) {
  }
  return nullptr;
}

nlohmann::json read_json_file(const std::filesystem::path& path, uint64_t max_bytes) {
  return parse_json(read_regular_file(path, max_bytes), path.string());
}

Error json_field_error(const std::string& source, const std::string& key, const std::string& what) {
  return Error(source + ": field '" + key + "' " + what);
}

}  // namespace histotrain
