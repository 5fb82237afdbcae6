#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace histotrain {

namespace {

// For each output position: the first input index and the normalised weights of its taps.
struct Taps {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;  // `width` per output position
  int width = 0;
};

Taps triangle_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double support = std::max(1.0, scale);  // widen the kernel when shrinking: antialiasing
  Taps taps;
  taps.width = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.first.resize(out_size);
  taps.count.resize(out_size);
  taps.weights.assign(static_cast<size_t>(out_size) * taps.width, 0.f);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(std::floor(center - support)));
    const int hi = std::min(in_size, static_cast<int>(std::ceil(center + support)));
    double total = 0;
    int n = 0;
    float* w = &taps.weights[static_cast<size_t>(o) * taps.width];
    for (int i = lo; i < hi && n < taps.width; ++i, ++n) {
      const double x = (i + 0.5 - center) / support;
      w[n] = static_cast<float>(std::max(0.0, 1.0 - std::abs(x)));
      total += w[n];
    }
    for (int k = 0; k < n; ++k) w[k] = static_cast<float>(w[k] / (total > 0 ? total : 1));
    taps.first[o] = lo;
    taps.count[o] = n;
  }
  return taps;
}

uint8_t to_byte(float v) { return static_cast<uint8_t>(std::clamp(v + 0.5f, 0.f, 255.f)); }

}  // namespace

void resize_rgb(const RgbImage& src, int out_w, int out_h, uint8_t* dst) {
  if (src.width == out_w && src.height == out_h) {
    std::memcpy(dst, src.pixels.data(), src.pixels.size());
    return;
  }
  const Taps horizontal = triangle_taps(src.width, out_w);
  const Taps vertical = triangle_taps(src.height, out_h);
  // Horizontal pass into floats (src.height x out_w), then vertical pass into bytes.
  std::vector<float> mid(static_cast<size_t>(src.height) * out_w * 3);
  for (int y = 0; y < src.height; ++y) {
    const uint8_t* in = src.row(y);
    float* out = &mid[static_cast<size_t>(y) * out_w * 3];
    for (int x = 0; x < out_w; ++x) {
      const float* w = &horizontal.weights[static_cast<size_t>(x) * horizontal.width];
      const uint8_t* p = in + horizontal.first[x] * 3;
      float r = 0, g = 0, b = 0;
      for (int k = 0; k < horizontal.count[x]; ++k, p += 3) {
        r += w[k] * p[0];
        g += w[k] * p[1];
        b += w[k] * p[2];
      }
      out[3 * x] = r;
      out[3 * x + 1] = g;
      out[3 * x + 2] = b;
    }
  }
  const size_t row_len = static_cast<size_t>(out_w) * 3;
  std::vector<float> acc(row_len);
  for (int y = 0; y < out_h; ++y) {
    std::fill(acc.begin(), acc.end(), 0.f);
    const float* w = &vertical.weights[static_cast<size_t>(y) * vertical.width];
    for (int k = 0; k < vertical.count[y]; ++k) {
      const float* in = &mid[(static_cast<size_t>(vertical.first[y]) + k) * row_len];
      for (size_t i = 0; i < row_len; ++i) acc[i] += w[k] * in[i];
    }
    uint8_t* out = dst + static_cast<size_t>(y) * row_len;
    for (size_t i = 0; i < row_len; ++i) out[i] = to_byte(acc[i]);
  }
}

RgbImage resize_rgb(const RgbImage& src, int out_w, int out_h) {
  RgbImage out(out_w, out_h);
  resize_rgb(src, out_w, out_h, out.pixels.data());
  return out;
}

}  // namespace histotrain
