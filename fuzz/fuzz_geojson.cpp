// libFuzzer target: any bytes as a QuPath GeoJSON export, the annotations `histotrain tile` labels
// tiles from. Each is read into regions or refused by name (not JSON, too deep, not GeoJSON, too
// many points): no crash, no hang. What is read holds only polygons of finite points with a
// label, inside-tests on them answer, and written out again it reads back as the same regions.
// Run with bench/fuzz.sh geojson.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "slide/geojson.h"
#include "util/errors.h"

using histotrain::Annotations;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Annotations read;
  try {
    read = histotrain::parse_annotations(text, "fuzz", 4096, 4096);
  } catch (const histotrain::Error&) {
    return 0;
  }
  std::vector<histotrain::GeoFeature> features;
  for (const auto& region : read.regions) {
    if (region.label.empty() || region.polygon.rings.empty()) std::abort();
    for (const auto& ring : region.polygon.rings)
      for (const auto& p : ring)
        if (!std::isfinite(p.x) || !std::isfinite(p.y)) std::abort();
    (void)histotrain::contains(region.polygon, 100.5, 100.5);
    (void)histotrain::coverage(region.polygon, {0, 0, 64, 64});
    features.push_back({region.polygon, region.label, {1, 2, 3}, {}});
  }
  const Annotations again = histotrain::parse_annotations(histotrain::geojson_text(features, "annotation"), "again");
  if (again.regions.size() != read.regions.size()) std::abort();
  for (size_t i = 0; i < again.regions.size(); ++i)
    if (again.regions[i].label != read.regions[i].label ||
        again.regions[i].polygon.rings.size() != read.regions[i].polygon.rings.size())
      std::abort();
  return 0;
}
