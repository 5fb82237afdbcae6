// Stain normalisation: every tile brought to one reference's colours before the model sees it.
// Macenko et al. (2009): a tile's haematoxylin and eosin vectors are found from its optical
// densities, its concentrations are rescaled to the reference's, and it is drawn again with the
// reference's vectors. Reinhard et al. (2001): each L*a*b* channel is shifted and scaled to the
// reference's mean and standard deviation. The reference is fitted once (from a tile, or from the
// training tiles), saved in checkpoint.json, and applied alike by train, eval, predict, cv and
// slide prediction. Glass takes no part in any fit: see kMinStainDensity.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/stain.h"
#include "util/enum_names.h"

namespace histotrain {

enum class StainMethod { none, macenko, reinhard };
template <>
struct Spellings<StainMethod> {
  static constexpr std::pair<StainMethod, const char*> all[] = {
      {StainMethod::none, "none"}, {StainMethod::macenko, "macenko"}, {StainMethod::reinhard, "reinhard"}};
};

// A pixel takes part in a fit when the length of its optical-density vector is at least this:
// glass (every channel above ~230) stays out, pale eosin stays in. (Macenko's paper drops a pixel
// when any one channel is below 0.15; that drops nearly pure eosin, which absorbs little red, and
// pulls the eosin vector towards haematoxylin.)
constexpr double kMinStainDensity = 0.15;

// One image's stains as Macenko finds them: unit optical-density vectors of haematoxylin and
// eosin (H the one absorbing more red) and the 99th percentile of each one's concentration.
struct MacenkoStains {
  Vec3 h{0, 0, 0}, e{0, 0, 0};
  double max_h = 0, max_e = 0;
  // Rows H, E and their unit cross product (what two stains leave unexplained).
  Mat3 matrix() const;
};

// Pixels given as RGB triples, `pixels` of them; nothing when fewer than `min_pixels` of them are
// stained or the two directions found are within 3 degrees (no two stains to tell apart).
std::optional<MacenkoStains> fit_macenko(const uint8_t* rgb, int64_t pixels, int64_t min_pixels = 64);

// The mean and standard deviation of each L*a*b* channel over an image's stained pixels.
struct LabStatistics {
  Vec3 mean{0, 0, 0}, std{1, 1, 1};
};
std::optional<LabStatistics> fit_reinhard(const uint8_t* rgb, int64_t pixels, int64_t min_pixels = 64);

// What tiles are normalised to: a method and its reference's numbers.
struct StainReference {
  StainMethod method = StainMethod::none;
  MacenkoStains stains;  // macenko
  LabStatistics lab;     // reinhard
  std::string source;    // where it was fitted ("train: 400 tiles", a file name), for the log
};

// The reference of `method` from `tiles` (each `pixels_per_tile` RGB pixels), their stained
// pixels pooled (a deterministic subsample past a few million). Throws Error when they hold too
// little stain to fit.
StainReference fit_stain_reference(StainMethod method, const std::vector<const uint8_t*>& tiles,
                                   int64_t pixels_per_tile, const std::string& source);

// Normalises one tile in place; false (the tile left as it was) when the tile itself holds too
// little stain to fit: glass, background, a blank tile.
bool normalize_stain(const StainReference& reference, uint8_t* rgb, int64_t pixels);

// checkpoint.json's "stain": {"method": ..., and the reference's numbers}. stain_reference_of
// reads it back, every number checked for range (it comes from a file); no key: method none.
nlohmann::json to_json(const StainReference& reference);
StainReference stain_reference_of(const nlohmann::json& j);
// Changes with the method and every number of the reference: keys tile caches made with it.
uint64_t stain_key(const StainReference& reference);
// One line for the log.
std::string describe(const StainReference& reference);

}  // namespace histotrain
