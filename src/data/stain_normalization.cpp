#include "data/stain_normalization.h"

#include <algorithm>
#include <cstdio>

#include "util/display_text.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

// Macenko's robust extremes: the 1st and 99th percentiles of the angles and concentrations.
constexpr double kPercentile = 0.01;
// Two stain directions closer than this are one stain: no fit.
constexpr double kMinStainAngle = 3.0;
// Pixels pooled for a reference from many tiles: past this, every k-th pixel.
constexpr int64_t kMaxPooledPixels = int64_t{4} << 20;

// The value below which `share` of `values` lie (nearest rank; reorders `values`).
double percentile(std::vector<double>& values, double share) {
  const auto k = static_cast<size_t>(std::clamp(share, 0.0, 1.0) * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

std::vector<Vec3> densities_where(const uint8_t* rgb, int64_t pixels, bool (*keep)(const Vec3&)) {
  const auto& table = density_table();
  std::vector<Vec3> out;
  for (int64_t p = 0; p < pixels; ++p, rgb += 3) {
    const Vec3 od{table[rgb[0]], table[rgb[1]], table[rgb[2]]};
    if (keep(od)) out.push_back(od);
  }
  return out;
}

bool stained(const Vec3& od) { return dot(od, od) >= kMinStainDensity * kMinStainDensity; }

// The eigenvectors of a symmetric 3 x 3 matrix by Jacobi rotations, as rows, largest eigenvalue first.
Mat3 eigenvectors(Mat3 a) {
  Mat3 v{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}};  // columns collect the rotations
  for (int sweep = 0; sweep < 50; ++sweep) {
    const double off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
    if (off < 1e-30) break;
    for (int p = 0; p < 2; ++p)
      for (int q = p + 1; q < 3; ++q) {
        if (std::abs(a[p][q]) < 1e-300) continue;
        const double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const double t = (theta >= 0 ? 1 : -1) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < 3; ++k) {  // a = J^T a J
          const double akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (int k = 0; k < 3; ++k) {
          const double apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (int k = 0; k < 3; ++k) {
          const double vkp = v[k][p], vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
  }
  int order[3] = {0, 1, 2};
  std::sort(order, order + 3, [&](int x, int y) { return a[x][x] > a[y][y]; });
  Mat3 rows{};
  for (int i = 0; i < 3; ++i) rows[i] = {v[0][order[i]], v[1][order[i]], v[2][order[i]]};
  return rows;
}

Mat3 covariance(const std::vector<Vec3>& points) {
  Vec3 mean{0, 0, 0};
  for (const Vec3& p : points)
    for (int c = 0; c < 3; ++c) mean[c] += p[c];
  for (double& m : mean) m /= static_cast<double>(points.size());
  Mat3 cov{};
  for (const Vec3& p : points)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) cov[i][j] += (p[i] - mean[i]) * (p[j] - mean[j]);
  for (auto& row : cov)
    for (double& x : row) x /= static_cast<double>(points.size());
  return cov;
}

// A vector pointing into positive optical density (eigenvectors come with either sign).
Vec3 positive(const Vec3& v) { return v[0] + v[1] + v[2] < 0 ? Vec3{-v[0], -v[1], -v[2]} : v; }

// The two extreme stain directions in the plane of the two main axes of the densities.
std::optional<std::pair<Vec3, Vec3>> stain_directions(const std::vector<Vec3>& od) {
  const Mat3 axes = eigenvectors(covariance(od));
  const Vec3 first = positive(axes[0]), second = axes[1];
  std::vector<double> angles;
  angles.reserve(od.size());
  for (const Vec3& p : od) angles.push_back(std::atan2(dot(p, second), dot(p, first)));
  const double low = percentile(angles, kPercentile), high = percentile(angles, 1 - kPercentile);
  const auto direction = [&](double phi) {
    return unit({std::cos(phi) * first[0] + std::sin(phi) * second[0], std::cos(phi) * first[1] + std::sin(phi) * second[1],
                 std::cos(phi) * first[2] + std::sin(phi) * second[2]});
  };
  // A stain absorbs, it never adds light: a component below zero is the percentile overshooting.
  const auto absorbing = [](Vec3 v) {
    for (double& x : v) x = std::max(x, 0.0);
    return unit(v);
  };
  const Vec3 a = absorbing(direction(low)), b = absorbing(direction(high));
  if (dot(a, a) < 0.5 || dot(b, b) < 0.5 || angle_degrees(a, b) < kMinStainAngle) return std::nullopt;
  // Haematoxylin absorbs more red than eosin does.
  return a[0] > b[0] ? std::make_pair(a, b) : std::make_pair(b, a);
}

uint8_t to_level(double v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

Vec3 vec3_of(const nlohmann::json& j, const char* key, double low, double high) {
  const auto& a = j.at(key);
  if (!a.is_array() || a.size() != 3) throw Error(std::string("stain reference: '") + key + "' is not 3 numbers");
  Vec3 v{};
  for (int c = 0; c < 3; ++c) {
    if (!a[c].is_number()) throw Error(std::string("stain reference: '") + key + "' is not 3 numbers");
    v[c] = a[c].get<double>();
    if (!(v[c] >= low && v[c] <= high))
      throw Error(std::string("stain reference: '") + key + "' has a value outside [" + std::to_string(low) + ", " +
                  std::to_string(high) + "]");
  }
  return v;
}

double number_of(const nlohmann::json& j, const char* key, double low, double high) {
  const auto& n = j.at(key);
  if (!n.is_number() || !(n.get<double>() >= low && n.get<double>() <= high))
    throw Error(std::string("stain reference: '") + key + "' is not a number in [" + std::to_string(low) + ", " +
                std::to_string(high) + "]");
  return n.get<double>();
}

}  // namespace

Mat3 MacenkoStains::matrix() const { return {h, e, unit(cross(h, e))}; }

std::optional<MacenkoStains> fit_macenko(const uint8_t* rgb, int64_t pixels, int64_t min_pixels) {
  const std::vector<Vec3> od = densities_where(rgb, pixels, stained);
  if (static_cast<int64_t>(od.size()) < std::max<int64_t>(min_pixels, 3)) return std::nullopt;
  const auto directions = stain_directions(od);
  if (!directions) return std::nullopt;
  MacenkoStains s;
  s.h = directions->first;
  s.e = directions->second;
  const Mat3 concentrations_of = inverse(s.matrix());
  std::vector<double> h, e;
  h.reserve(od.size());
  e.reserve(od.size());
  for (const Vec3& p : od) {
    const Vec3 c = times(p, concentrations_of);
    h.push_back(c[0]);
    e.push_back(c[1]);
  }
  s.max_h = percentile(h, 1 - kPercentile);
  s.max_e = percentile(e, 1 - kPercentile);
  if (!(s.max_h > 1e-3 && s.max_e > 1e-3)) return std::nullopt;
  return s;
}

std::optional<LabStatistics> fit_reinhard(const uint8_t* rgb, int64_t pixels, int64_t min_pixels) {
  const auto& table = density_table();
  Vec3 sum{0, 0, 0}, squares{0, 0, 0};
  int64_t n = 0;
  for (int64_t p = 0; p < pixels; ++p, rgb += 3) {
    if (!stained({table[rgb[0]], table[rgb[1]], table[rgb[2]]})) continue;
    const Vec3 lab = lab_of_rgb(rgb);
    for (int c = 0; c < 3; ++c) {
      sum[c] += lab[c];
      squares[c] += lab[c] * lab[c];
    }
    ++n;
  }
  if (n < std::max<int64_t>(min_pixels, 2)) return std::nullopt;
  LabStatistics s;
  for (int c = 0; c < 3; ++c) {
    s.mean[c] = sum[c] / static_cast<double>(n);
    s.std[c] = std::sqrt(std::max(squares[c] / static_cast<double>(n) - s.mean[c] * s.mean[c], 0.0));
  }
  return s;
}

StainReference fit_stain_reference(StainMethod method, const std::vector<const uint8_t*>& tiles,
                                   int64_t pixels_per_tile, const std::string& source) {
  StainReference reference;
  reference.method = method;
  reference.source = source;
  if (method == StainMethod::none) return reference;
  const int64_t total = static_cast<int64_t>(tiles.size()) * pixels_per_tile;
  const int64_t stride = std::max<int64_t>(1, (total + kMaxPooledPixels - 1) / kMaxPooledPixels);
  std::vector<uint8_t> pooled;
  pooled.reserve(static_cast<size_t>(total / stride + 1) * 3);
  for (int64_t i = 0; i < total; i += stride) {
    const uint8_t* p = tiles[static_cast<size_t>(i / pixels_per_tile)] + (i % pixels_per_tile) * 3;
    pooled.insert(pooled.end(), p, p + 3);
  }
  const int64_t pixels = static_cast<int64_t>(pooled.size() / 3);
  if (method == StainMethod::macenko) {
    const auto stains = fit_macenko(pooled.data(), pixels, 256);
    if (!stains) throw Error("cannot fit a Macenko stain reference from " + source + ": too few stained pixels");
    reference.stains = *stains;
  } else {
    const auto lab = fit_reinhard(pooled.data(), pixels, 256);
    if (!lab) throw Error("cannot fit a Reinhard stain reference from " + source + ": too few stained pixels");
    reference.lab = *lab;
  }
  return reference;
}

bool normalize_stain(const StainReference& reference, uint8_t* rgb, int64_t pixels) {
  if (reference.method == StainMethod::macenko) {
    const auto own = fit_macenko(rgb, pixels, std::max<int64_t>(64, pixels / 100));
    if (!own) return false;
    const MacenkoStains& to = reference.stains;
    // Concentrations in the tile's own stains, H and E rescaled to the reference's range, drawn
    // with the reference's stains. What two stains do not explain (the residual) is dropped, as
    // in Macenko's method: carried into another basis it turns dark nuclei red.
    Mat3 drawn = to.matrix();
    drawn[2] = {0, 0, 0};
    const double scale[2] = {to.max_h / own->max_h, to.max_e / own->max_e};
    for (int k = 0; k < 2; ++k)
      for (double& x : drawn[k]) x *= scale[k];
    apply_density_map({times(inverse(own->matrix()), drawn), {0, 0, 0}}, rgb, pixels);
    return true;
  }
  if (reference.method == StainMethod::reinhard) {
    const auto own = fit_reinhard(rgb, pixels, std::max<int64_t>(64, pixels / 100));
    if (!own) return false;
    Vec3 gain{};
    for (int c = 0; c < 3; ++c) gain[c] = reference.lab.std[c] / std::max(own->std[c], 0.5);
    for (int64_t p = 0; p < pixels; ++p, rgb += 3) {
      Vec3 lab = lab_of_rgb(rgb);
      for (int c = 0; c < 3; ++c) lab[c] = (lab[c] - own->mean[c]) * gain[c] + reference.lab.mean[c];
      const Vec3 out = rgb_of_lab(lab);
      for (int c = 0; c < 3; ++c) rgb[c] = to_level(out[c]);
    }
    return true;
  }
  return false;
}

nlohmann::json to_json(const StainReference& r) {
  nlohmann::json j = {{"method", spelling(r.method)}};
  if (r.method == StainMethod::macenko) {
    j["h"] = r.stains.h;
    j["e"] = r.stains.e;
    j["max_h"] = r.stains.max_h;
    j["max_e"] = r.stains.max_e;
  } else if (r.method == StainMethod::reinhard) {
    j["lab_mean"] = r.lab.mean;
    j["lab_std"] = r.lab.std;
  }
  if (r.method != StainMethod::none) j["source"] = r.source;
  return j;
}

StainReference stain_reference_of(const nlohmann::json& j) {
  StainReference r;
  if (j.is_null()) return r;
  if (!j.is_object() || !j.contains("method") || !j["method"].is_string())
    throw Error("stain reference: not an object with a 'method'");
  const auto method = from_spelling<StainMethod>(j["method"].get<std::string>());
  if (!method) throw Error("stain reference: method is not " + spelling_choices<StainMethod>());
  r.method = *method;
  try {
    if (r.method == StainMethod::macenko) {
      r.stains.h = vec3_of(j, "h", -1, 1);
      r.stains.e = vec3_of(j, "e", -1, 1);
      r.stains.max_h = number_of(j, "max_h", 1e-3, 20);
      r.stains.max_e = number_of(j, "max_e", 1e-3, 20);
      const double nh = std::sqrt(dot(r.stains.h, r.stains.h)), ne = std::sqrt(dot(r.stains.e, r.stains.e));
      if (std::abs(nh - 1) > 1e-3 || std::abs(ne - 1) > 1e-3 || angle_degrees(r.stains.h, r.stains.e) < kMinStainAngle)
        throw Error("stain reference: 'h' and 'e' are not two distinct unit vectors");
    } else if (r.method == StainMethod::reinhard) {
      r.lab.mean = vec3_of(j, "lab_mean", -128, 128);
      r.lab.std = vec3_of(j, "lab_std", 0, 128);
    }
  } catch (const nlohmann::json::exception&) {
    throw Error("stain reference: a number of the " + spelling(r.method) + " reference is missing");
  }
  if (j.contains("source") && j["source"].is_string()) r.source = j["source"].get<std::string>().substr(0, 256);
  return r;
}

uint64_t stain_key(const StainReference& reference) {
  nlohmann::json j = to_json(reference);
  j.erase("source");
  Fnv1a h;
  h.add(j.dump());
  return h.value;
}

std::string describe(const StainReference& r) {
  char text[256];
  if (r.method == StainMethod::macenko)
    std::snprintf(text, sizeof text, "Macenko, H (%.3f, %.3f, %.3f) up to %.2f, E (%.3f, %.3f, %.3f) up to %.2f",
                  r.stains.h[0], r.stains.h[1], r.stains.h[2], r.stains.max_h, r.stains.e[0], r.stains.e[1],
                  r.stains.e[2], r.stains.max_e);
  else if (r.method == StainMethod::reinhard)
    std::snprintf(text, sizeof text, "Reinhard, L*a*b* mean (%.1f, %.1f, %.1f), std (%.1f, %.1f, %.1f)",
                  r.lab.mean[0], r.lab.mean[1], r.lab.mean[2], r.lab.std[0], r.lab.std[1], r.lab.std[2]);
  else
    return "none";
  return std::string(text) + (r.source.empty() ? "" : ", fitted on " + printable(r.source));
}

}  // namespace histotrain
