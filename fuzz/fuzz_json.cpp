// libFuzzer target: any bytes as one of the JSON files histotrain reads from others (a plan, a
// study's results.json, a checkpoint.json, a cache). Each is parsed or refused (not JSON, or
// nested deeper than kMaxJsonDepth): no crash, no stack overflow, and what parses can be walked
// and written again within the depth limit. Run with bench/fuzz.sh json.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "util/errors.h"
#include "util/json_file.h"

namespace {

int depth_of(const nlohmann::json& j) {
  int deepest = 0;
  if (j.is_structured())
    for (const auto& child : j) deepest = std::max(deepest, depth_of(child));
  return deepest + (j.is_structured() ? 1 : 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json parsed = histotrain::parse_json_or_null(text);
  if (depth_of(parsed) > histotrain::kMaxJsonDepth) std::abort();
  (void)parsed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  try {
    histotrain::parse_json(text, "fuzz");
  } catch (const histotrain::Error&) {
  }
  return 0;
}
