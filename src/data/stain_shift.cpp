#include "data/stain_shift.h"

#include <cmath>
#include <random>

namespace histotrain {

namespace {

Vec3 between(const Vec3& from, const Vec3& to, double t) {
  return unit({(1 - t) * from[0] + t * to[0], (1 - t) * from[1] + t * to[1], (1 - t) * from[2] + t * to[2]});
}

}  // namespace

MacenkoStains macenko_published_stains() {
  MacenkoStains s;
  s.h = unit({0.5626, 0.7201, 0.4062});
  s.e = unit({0.2159, 0.8012, 0.5581});
  s.max_h = 1.9705;
  s.max_e = 1.0308;
  return s;
}

void shift_hed(uint8_t* rgb, int64_t pixels, double sigma, uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + 0x5851f42d4c957f2dull);
  apply_density_map(hed_density_map(draw_hed_jitter(sigma, rng)), rgb, pixels);
}

bool shift_towards_lab(uint8_t* rgb, int64_t pixels, const MacenkoStains& lab, double strength) {
  const auto own = fit_macenko(rgb, pixels, std::max<int64_t>(64, pixels / 100));
  if (!own) return false;
  StainReference target;
  target.method = StainMethod::macenko;
  target.stains.h = between(own->h, lab.h, strength);
  target.stains.e = between(own->e, lab.e, strength);
  // Concentration ranges move geometrically: half-way between 1 and 2 is sqrt(2).
  target.stains.max_h = own->max_h * std::pow(lab.max_h / own->max_h, strength);
  target.stains.max_e = own->max_e * std::pow(lab.max_e / own->max_e, strength);
  return normalize_stain(target, rgb, pixels);
}

}  // namespace histotrain
