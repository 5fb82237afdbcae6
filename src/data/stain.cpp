#include "data/stain.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace histotrain {

namespace {

// sRGB's transfer curve, each direction.
double linear_of_srgb(double v) { return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4); }
double srgb_of_linear(double v) { return v <= 0.0031308 ? 12.92 * v : 1.055 * std::pow(v, 1 / 2.4) - 0.055; }

// CIE's f(t) for L*a*b*, and its inverse.
constexpr double kDelta = 6.0 / 29.0;
double lab_f(double t) { return t > kDelta * kDelta * kDelta ? std::cbrt(t) : t / (3 * kDelta * kDelta) + 4.0 / 29.0; }
double lab_f_inverse(double f) { return f > kDelta ? f * f * f : 3 * kDelta * kDelta * (f - 4.0 / 29.0); }

// D65 white, and sRGB's linear RGB <-> XYZ.
constexpr Vec3 kWhite{0.95047, 1.0, 1.08883};
constexpr Mat3 kXyzOfRgb{{{0.4124564, 0.3575761, 0.1804375},
                          {0.2126729, 0.7151522, 0.0721750},
                          {0.0193339, 0.1191920, 0.9503041}}};

Vec3 apply_columns(const Mat3& m, const Vec3& v) {  // m v, v a column
  return {dot(m[0], v), dot(m[1], v), dot(m[2], v)};
}

uint8_t to_level(double v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace

const std::array<float, 256>& density_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[v] = static_cast<float>(optical_density(v));
    return t;
  }();
  return table;
}

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
Vec3 unit(const Vec3& v) {
  const double n = std::sqrt(dot(v, v));
  return n > 0 ? Vec3{v[0] / n, v[1] / n, v[2] / n} : v;
}
Vec3 times(const Vec3& v, const Mat3& m) {
  Vec3 out{0, 0, 0};
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 3; ++j) out[j] += v[k] * m[k][j];
  return out;
}
Mat3 times(const Mat3& a, const Mat3& b) { return {times(a[0], b), times(a[1], b), times(a[2], b)}; }
double determinant(const Mat3& m) { return dot(m[0], cross(m[1], m[2])); }
Mat3 inverse(const Mat3& m) {
  const double det = determinant(m);
  if (std::abs(det) < 1e-12) return Mat3{};
  // The columns of the inverse are the cross products of the rows, over the determinant.
  const Vec3 c0 = cross(m[1], m[2]), c1 = cross(m[2], m[0]), c2 = cross(m[0], m[1]);
  Mat3 inv{};
  for (int i = 0; i < 3; ++i) inv[i] = {c0[i] / det, c1[i] / det, c2[i] / det};
  return inv;
}
double angle_degrees(const Vec3& a, const Vec3& b) {
  const double c = dot(unit(a), unit(b));
  return std::acos(std::clamp(c, -1.0, 1.0)) * 180.0 / 3.14159265358979323846;
}

const Mat3& ruifrok_hed() {
  static const Mat3 m = {unit({0.65, 0.70, 0.29}), unit({0.07, 0.99, 0.11}), unit({0.27, 0.57, 0.78})};
  return m;
}

std::optional<StainAugment> StainAugment::parse(std::string_view text) {
  if (text == "none") return StainAugment{};
  if (text == "hed") return StainAugment{kDefaultSigma};
  if (text.substr(0, 4) != "hed:" || text.size() > 24) return std::nullopt;
  const std::string number(text.substr(4));
  char* end = nullptr;
  const double sigma = std::strtod(number.c_str(), &end);
  // A strength past 1 would scale stains by negative amounts.
  if (number.empty() || end != number.c_str() + number.size() || !(sigma > 0 && sigma <= 1)) return std::nullopt;
  return StainAugment{sigma};
}

std::string StainAugment::text() const {
  if (hed_sigma <= 0) return "none";
  if (hed_sigma == kDefaultSigma) return "hed";
  char buf[40];
  std::snprintf(buf, sizeof buf, "hed:%g", hed_sigma);
  if (std::strtod(buf + 4, nullptr) != hed_sigma) std::snprintf(buf, sizeof buf, "hed:%.17g", hed_sigma);
  return buf;
}

HedJitter draw_hed_jitter(double sigma, std::mt19937_64& rng) {
  HedJitter j;
  if (sigma <= 0) return j;
  std::uniform_real_distribution<double> u(-sigma, sigma);
  for (int k = 0; k < 3; ++k) {
    j.alpha[k] = 1 + u(rng);
    j.beta[k] = u(rng);
  }
  return j;
}

DensityMap hed_density_map(const HedJitter& jitter) {
  const Mat3& m = ruifrok_hed();
  Mat3 scaled = m;
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 3; ++j) scaled[k][j] *= jitter.alpha[k];
  return {times(inverse(m), scaled), times(jitter.beta, m)};
}

void apply_density_map(const DensityMap& map, uint8_t* rgb, int64_t pixels) {
  const auto& od = density_table();
  for (int64_t p = 0; p < pixels; ++p, rgb += 3) {
    const Vec3 out = times(Vec3{od[rgb[0]], od[rgb[1]], od[rgb[2]]}, map.a);
    for (int c = 0; c < 3; ++c) rgb[c] = to_level(value_of_density(out[c] + map.b[c]));
  }
}

Vec3 lab_of_rgb(const uint8_t* rgb) {
  static const std::array<double, 256> linear = [] {
    std::array<double, 256> t{};
    for (int v = 0; v < 256; ++v) t[v] = linear_of_srgb(v / 255.0);
    return t;
  }();
  const Vec3 xyz = apply_columns(kXyzOfRgb, {linear[rgb[0]], linear[rgb[1]], linear[rgb[2]]});
  const double fx = lab_f(xyz[0] / kWhite[0]), fy = lab_f(xyz[1] / kWhite[1]), fz = lab_f(xyz[2] / kWhite[2]);
  return {116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)};
}

Vec3 rgb_of_lab(const Vec3& lab) {
  static const Mat3 rgb_of_xyz = inverse(kXyzOfRgb);
  const double fy = (lab[0] + 16) / 116, fx = fy + lab[1] / 500, fz = fy - lab[2] / 200;
  const Vec3 xyz{kWhite[0] * lab_f_inverse(fx), kWhite[1] * lab_f_inverse(fy), kWhite[2] * lab_f_inverse(fz)};
  const Vec3 lin = apply_columns(rgb_of_xyz, xyz);
  return {255 * srgb_of_linear(std::max(lin[0], 0.0)), 255 * srgb_of_linear(std::max(lin[1], 0.0)),
          255 * srgb_of_linear(std::max(lin[2], 0.0))};
}

}  // namespace histotrain
