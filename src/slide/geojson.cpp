#include "slide/geojson.h"

#include <cmath>

#include "util/errors.h"
#include "util/files.h"
#include "util/json_file.h"

namespace histotrain {

namespace {

constexpr uint64_t kMaxGeojsonBytes = uint64_t{64} << 20;
constexpr int64_t kMaxPoints = 10'000'000;

struct Reader {
  Annotations out;
  double width = 0, height = 0;
  int64_t points = 0;
  std::string source;

  void skip(const std::string& why) { ++out.skipped[why]; }

  // A ring of [x, y] pairs; empty when any point is not two finite numbers.
  std::vector<Point> ring_of(const nlohmann::json& ring) {
    std::vector<Point> points_of_ring;
    if (!ring.is_array()) return {};
    for (const auto& p : ring) {
      if (!p.is_array() || p.size() < 2 || !p[0].is_number() || !p[1].is_number()) return {};
      const double x = p[0].get<double>(), y = p[1].get<double>();
      if (!std::isfinite(x) || !std::isfinite(y)) return {};
      points_of_ring.push_back({x, y});
    }
    points += static_cast<int64_t>(points_of_ring.size());
    if (points > kMaxPoints)
      throw Error(source + " holds more than " + std::to_string(kMaxPoints) + " points: not an annotation file");
    return points_of_ring;
  }

  void add_polygon(const std::string& label, const nlohmann::json& rings) {
    Polygon polygon;
    if (rings.is_array())
      for (const auto& r : rings) {
        std::vector<Point> ring = ring_of(r);
        if (ring.size() >= 3) polygon.rings.push_back(std::move(ring));
      }
    // Degenerate: no extent in x or in y. (A ring that crosses itself keeps its even-odd inside.)
    const Box box = bounds(polygon);
    if (polygon.rings.empty() || box.empty()) return skip("an empty or degenerate polygon");
    if (width > 0 && (box.x1 <= 0 || box.y1 <= 0 || box.x0 >= width || box.y0 >= height))
      return skip("a polygon wholly outside the slide");
    out.regions.push_back({label, std::move(polygon)});
  }

  static std::string label_of(const nlohmann::json& properties) {
    if (!properties.is_object()) return "";
    const auto c = properties.find("classification");
    if (c == properties.end()) return "";
    if (c->is_string()) return c->get<std::string>();
    if (c->is_object() && c->contains("name") && (*c)["name"].is_string()) return (*c)["name"].get<std::string>();
    return "";
  }

  void add_feature(const nlohmann::json& feature) {
    if (!feature.is_object() || !feature.contains("geometry") || !feature["geometry"].is_object())
      return skip("not a feature with a geometry");
    const std::string label = label_of(feature.value("properties", nlohmann::json()));
    if (label.empty()) return skip("no classification");
    const auto& geometry = feature["geometry"];
    const std::string type = geometry.value("type", "");
    const auto& coordinates = geometry.value("coordinates", nlohmann::json());
    if (type == "Polygon") return add_polygon(label, coordinates);
    if (type == "MultiPolygon" && coordinates.is_array()) {
      for (const auto& polygon : coordinates) add_polygon(label, polygon);
      return;
    }
    skip("a " + (type.empty() ? std::string("geometry without a type") : type) + " (only polygons label tiles)");
  }
};

nlohmann::json coordinates_of(const Polygon& polygon) {
  nlohmann::json rings = nlohmann::json::array();
  for (const auto& ring : polygon.rings) {
    nlohmann::json r = nlohmann::json::array();
    for (const Point& p : ring) r.push_back({p.x, p.y});
    if (!ring.empty()) r.push_back({ring.front().x, ring.front().y});  // GeoJSON rings close on their start
    rings.push_back(r);
  }
  return rings;
}

}  // namespace

std::string Annotations::describe() const {
  std::map<std::string, int64_t> per_label;
  for (const auto& r : regions) ++per_label[r.label];
  std::string text = std::to_string(regions.size()) + " region(s)";
  std::string labels;
  for (const auto& [label, n] : per_label) labels += (labels.empty() ? "" : ", ") + label + " " + std::to_string(n);
  if (!labels.empty()) text += " (" + labels + ")";
  std::string skips;
  for (const auto& [why, n] : skipped) skips += (skips.empty() ? "" : "; ") + std::to_string(n) + " " + why;
  if (!skips.empty()) text += "; skipped: " + skips;
  return text;
}

Annotations read_annotations(const std::string& path, double width, double height) {
  return annotations_of_json(read_json_file(path, kMaxGeojsonBytes), path, width, height);
}

Annotations parse_annotations(const std::string& text, const std::string& source, double width, double height) {
  if (text.size() > kMaxGeojsonBytes) throw Error(source + " is larger than 64 MiB: not an annotation file");
  return annotations_of_json(parse_json(text, source), source, width, height);
}

Annotations annotations_of_json(const nlohmann::json& doc, const std::string& path, double width, double height) {
  Reader reader;
  reader.width = width;
  reader.height = height;
  reader.source = path;
  if (doc.is_array()) {
    for (const auto& f : doc) reader.add_feature(f);
  } else if (doc.is_object() && doc.value("type", "") == "FeatureCollection" && doc.contains("features") &&
             doc["features"].is_array()) {
    for (const auto& f : doc["features"]) reader.add_feature(f);
  } else if (doc.is_object() && doc.value("type", "") == "Feature") {
    reader.add_feature(doc);
  } else {
    throw Error(path + " is not GeoJSON annotations (a FeatureCollection, a list of Features or a Feature)");
  }
  return reader.out;
}

std::array<int, 3> class_colour(size_t k) {
  static const std::array<int, 3> colours[] = {{31, 119, 180}, {255, 127, 14},  {44, 160, 44}, {23, 190, 207},
                                               {20, 20, 20},   {230, 200, 20},  {140, 86, 75}, {214, 39, 40},
                                               {127, 127, 127}, {0, 90, 60}};
  return colours[k % (sizeof colours / sizeof colours[0])];
}

std::string geojson_text(const std::vector<GeoFeature>& features, const std::string& object_type) {
  nlohmann::json collection = {{"type", "FeatureCollection"}, {"features", nlohmann::json::array()}};
  for (const auto& f : features) {
    nlohmann::json measurements = nlohmann::json::object();
    for (const auto& [name, value] : f.measurements) measurements[name] = value;
    collection["features"].push_back(
        {{"type", "Feature"},
         {"geometry", {{"type", "Polygon"}, {"coordinates", coordinates_of(f.polygon)}}},
         {"properties",
          {{"objectType", object_type},
           {"classification", {{"name", f.classification}, {"color", {f.colour[0], f.colour[1], f.colour[2]}}}},
           {"measurements", measurements}}}});
  }
  return collection.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace histotrain
