// The drawing primitives of the synthetic tiles (synth.h): a portable random generator, smooth
// value noise, and a canvas of two stain densities painted in tile units. Shared by the tissue
// painters (tissue.cpp) and the dataset writer (synth.cpp), which seeds scenes the same way.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace histotrain::synth {

constexpr double kPi = 3.14159265358979323846;

// splitmix64: tiny, fast and identical on every platform (std:: distributions are not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform(double lo = 0, double hi = 1) { return lo + (hi - lo) * (next() >> 11) * (1.0 / 9007199254740992.0); }
  int integer(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  double normal(double mean = 0, double sd = 1) {
    const double u = std::max(uniform(), 1e-12), v = uniform();
    return mean + sd * std::sqrt(-2 * std::log(u)) * std::cos(2 * kPi * v);
  }

 private:
  uint64_t state_;
};

inline uint64_t mix(uint64_t a, uint64_t b) { return Rng(a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull)).next(); }

inline double smoothstep(double edge0, double edge1, double x) {
  const double t = std::clamp((x - edge0) / (edge1 - edge0), 0.0, 1.0);
  return t * t * (3 - 2 * t);
}

// Smooth value noise in [0, 1] with lattice spacing 1.
class ValueNoise {
 public:
  explicit ValueNoise(uint64_t seed) : seed_(seed) {}
  double at(double x, double y) const {
    const double fx = std::floor(x), fy = std::floor(y);
    const auto ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy);
    const double tx = smooth(x - fx), ty = smooth(y - fy);
    const double a = lattice(ix, iy), b = lattice(ix + 1, iy), c = lattice(ix, iy + 1), d = lattice(ix + 1, iy + 1);
    return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
  }

 private:
  static double smooth(double t) { return t * t * (3 - 2 * t); }
  double lattice(int64_t x, int64_t y) const {
    return (mix(seed_, static_cast<uint64_t>(x) * 73856093ull ^ static_cast<uint64_t>(y) * 19349663ull) >> 11) *
           (1.0 / 9007199254740992.0);
  }
  uint64_t seed_;
};

// Two stain-density maps over a square tile. Coordinates given to the painters are in tile
// units (0..1), so the same scene renders at any pixel size.
class StainCanvas {
 public:
  explicit StainCanvas(int size) : n_(size), h_(static_cast<size_t>(size) * size, 0.f), e_(h_.size(), 0.f) {}
  int size() const { return n_; }
  float& h(int x, int y) { return h_[static_cast<size_t>(y) * n_ + x]; }
  float& e(int x, int y) { return e_[static_cast<size_t>(y) * n_ + x]; }

  // Calls f(px, py, rho) for pixels of an ellipse (rho < 1 inside), with a rim of `soft` in rho.
  template <typename F>
  void for_ellipse(double cx, double cy, double rx, double ry, double angle, double soft, F f) {
    const double reach = std::max(rx, ry) * (1 + soft) * n_ + 1;
    const int x0 = std::max(0, static_cast<int>(cx * n_ - reach)), x1 = std::min(n_ - 1, static_cast<int>(cx * n_ + reach));
    const int y0 = std::max(0, static_cast<int>(cy * n_ - reach)), y1 = std::min(n_ - 1, static_cast<int>(cy * n_ + reach));
    const double c = std::cos(angle), s = std::sin(angle);
    for (int py = y0; py <= y1; ++py) {
      for (int px = x0; px <= x1; ++px) {
        const double dx = (px + 0.5) / n_ - cx, dy = (py + 0.5) / n_ - cy;
        const double u = (dx * c + dy * s) / rx, v = (-dx * s + dy * c) / ry;
        const double rho = std::sqrt(u * u + v * v);
        if (rho < 1 + soft) f(px, py, rho);
      }
    }
  }

  // Adds stain inside an ellipse with a soft edge.
  void add_ellipse(double cx, double cy, double rx, double ry, double angle, double add_h, double add_e,
                   double soft = 0.25) {
    for_ellipse(cx, cy, rx, ry, angle, soft, [&](int px, int py, double rho) {
      const auto w = static_cast<float>(1 - smoothstep(1 - soft, 1 + soft, rho));
      h(px, py) += static_cast<float>(add_h) * w;
      e(px, py) += static_cast<float>(add_e) * w;
    });
  }

  // Removes stain inside an ellipse (lumens, air spaces, vacuoles); keep = what is left at the centre.
  void clear_ellipse(double cx, double cy, double rx, double ry, double angle, double keep = 0.03, double soft = 0.2) {
    for_ellipse(cx, cy, rx, ry, angle, soft, [&](int px, int py, double rho) {
      const auto w = static_cast<float>((1 - keep) * (1 - smoothstep(1 - soft, 1 + soft, rho)));
      h(px, py) *= 1 - w;
      e(px, py) *= 1 - w;
    });
  }

  // A nucleus: haematoxylin with coarse chromatin texture.
  void nucleus(double cx, double cy, double rx, double ry, double angle, double density, const ValueNoise& chromatin) {
    for_ellipse(cx, cy, rx, ry, angle, 0.2, [&](int px, int py, double rho) {
      const double w = 1 - smoothstep(0.8, 1.2, rho);
      const double grain = 0.75 + 0.5 * chromatin.at(px * 0.35, py * 0.35);
      h(px, py) += static_cast<float>(density * w * grain);
      e(px, py) *= static_cast<float>(1 - 0.5 * w);
    });
  }

  std::vector<float>& h_map() { return h_; }
  std::vector<float>& e_map() { return e_; }

 private:
  int n_;
  std::vector<float> h_, e_;
};

}  // namespace histotrain::synth
