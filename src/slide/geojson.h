// QuPath's GeoJSON: annotations a pathologist drew (read), and tiles or regions histotrain writes
// for QuPath to import (File > Import objects). Coordinates are level-0 pixels.
//
// Read: a FeatureCollection, a list of Features, or one Feature; Polygon and MultiPolygon
// geometries; the label is the classification's name (QuPath writes {"classification": {"name":
// ...}}; a plain string is taken too). What cannot be used is skipped and counted, never fatal:
// another geometry, no classification, an empty or degenerate polygon, one wholly outside the
// slide. Bounded: at most 64 MiB, nesting 64 deep (util/json_file.h), 10^7 points in all.
#pragma once
#include <array>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/polygon.h"

namespace histotrain {

struct Annotation {
  std::string label;
  Polygon polygon;  // a MultiPolygon gives one Annotation per polygon
};

struct Annotations {
  std::vector<Annotation> regions;
  std::map<std::string, int64_t> skipped;  // why -> how many features
  std::string describe() const;          // "12 regions (tumour 7, stroma 5); skipped: 2 without a classification"
};

// `width` x `height`: the slide's level 0 (regions wholly outside it are skipped); 0 x 0: no check.
Annotations read_annotations(const std::string& path, double width = 0, double height = 0);
// The same from text already read (`source` names it in errors), and from a parsed document.
Annotations parse_annotations(const std::string& text, const std::string& source, double width = 0, double height = 0);
Annotations annotations_of_json(const nlohmann::json& doc, const std::string& source, double width = 0,
                                double height = 0);

// One feature to write: a polygon, its class (and colour), and named numbers (QuPath shows them
// as measurements).
struct GeoFeature {
  Polygon polygon;
  std::string classification;
  std::array<int, 3> colour{128, 128, 128};
  std::map<std::string, double> measurements;
};

// The colour of class `k` in pictures and GeoJSON: away from H&E's pinks and purples, so that an
// overlay reads against the stain, and no two of the first five alike over it.
std::array<int, 3> class_colour(size_t k);

// A FeatureCollection of `features` as objects of `object_type` ("annotation", "detection").
std::string geojson_text(const std::vector<GeoFeature>& features, const std::string& object_type);

}  // namespace histotrain
