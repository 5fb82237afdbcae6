// Colour as stain: optical density, colour deconvolution into haematoxylin, eosin and a residual
// (Ruifrok & Johnston, 2001), the HED augmentation of Tellez et al. (2018), and CIE L*a*b*.
// Everything here works on 8-bit RGB pixels; the normalisers built on it are in
// data/stain_normalization.h.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace histotrain {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;  // three row vectors

// Optical density of a channel value v in [0, 255]: -ln((v + 1) / 256), 0 for all the light and
// 5.5 for none; the +1 keeps black finite, and 256 exp(-od) - 1 gives v back exactly.
inline double optical_density(double v) { return -std::log((v + 1.0) / 256.0); }
inline double value_of_density(double od) { return 256.0 * std::exp(-od) - 1.0; }

// The optical density of each of the 256 channel values.
const std::array<float, 256>& density_table();

Vec3 cross(const Vec3& a, const Vec3& b);
double dot(const Vec3& a, const Vec3& b);
Vec3 unit(const Vec3& v);
// Row vector times matrix: sum_k v[k] m[k].
Vec3 times(const Vec3& v, const Mat3& m);
Mat3 times(const Mat3& a, const Mat3& b);
// The inverse; all zeros when the matrix is singular (check with determinant()).
Mat3 inverse(const Mat3& m);
double determinant(const Mat3& m);
// Angle between two vectors, degrees.
double angle_degrees(const Vec3& a, const Vec3& b);

// Ruifrok & Johnston's optical-density vectors of haematoxylin, eosin and DAB, unit length, as
// rows: on H&E slides the DAB row carries the residual. An RGB pixel's optical densities od (a row)
// are c M, so its stain concentrations are c = od M^-1.
const Mat3& ruifrok_hed();

// --stain-augment: none, or hed[:SIGMA] (HED augmentation of that strength, default 0.05).
struct StainAugment {
  static constexpr double kDefaultSigma = 0.05;
  double hed_sigma = 0;  // 0: off
  static std::optional<StainAugment> parse(std::string_view text);
  std::string text() const;
  static const char* example() { return "hed:0.1"; }
};

// One image's HED augmentation: each stain concentration c_k becomes alpha_k c_k + beta_k.
struct HedJitter {
  Vec3 alpha{1, 1, 1};
  Vec3 beta{0, 0, 0};
};
// alpha_k ~ U(1 - sigma, 1 + sigma), beta_k ~ U(-sigma, sigma), drawn H, E, residual in turn.
HedJitter draw_hed_jitter(double sigma, std::mt19937_64& rng);

// An affine map of optical densities, od' = od a + b (od a row): what a change of stains does.
struct DensityMap {
  Mat3 a{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}};
  Vec3 b{0, 0, 0};
};
// The jitter as a map of optical densities: a = M^-1 diag(alpha) M, b = beta M.
DensityMap hed_density_map(const HedJitter& jitter);
// Applies `map` to `pixels` RGB pixels in place (rounded to the nearest level, clipped to [0, 255]).
void apply_density_map(const DensityMap& map, uint8_t* rgb, int64_t pixels);

// CIE L*a*b* (D65) of an sRGB pixel, and back (unclipped: the caller rounds and clips).
Vec3 lab_of_rgb(const uint8_t* rgb);
Vec3 rgb_of_lab(const Vec3& lab);

}  // namespace histotrain
