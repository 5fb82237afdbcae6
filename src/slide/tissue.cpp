#include "slide/tissue.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace histotrain {

namespace {

struct Hsv {
  double h, s, v;  // h in degrees (0 when grey), s and v in 0..1
};

Hsv hsv_of(const uint8_t* p) {
  const double r = p[0] / 255.0, g = p[1] / 255.0, b = p[2] / 255.0;
  const double mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
  double h = 0;
  if (d > 0) {
    if (mx == r) h = 60 * std::fmod((g - b) / d + 6, 6);
    else if (mx == g) h = 60 * ((b - r) / d + 2);
    else h = 60 * ((r - g) / d + 4);
  }
  return {h, mx > 0 ? d / mx : 0, mx};
}

// Green and blue pen; stains run from purple (haematoxylin, ~250-300 degrees) to pink (eosin).
bool pen_hue(double h) { return h > 70 && h < 235; }

using Mask = std::vector<uint8_t>;

// One pass of filtered(): along rows (step 1) or columns (step w), the count of set pixels in a
// window of 2r+1 (edges repeated) kept as a running sum, so that the cost does not grow with r.
Mask filtered_1d(const Mask& m, int w, int h, int radius, bool erode, bool along_rows) {
  Mask out(m.size());
  const int lines = along_rows ? h : w, length = along_rows ? w : h;
  const size_t line_step = along_rows ? static_cast<size_t>(w) : 1, step = along_rows ? 1 : static_cast<size_t>(w);
  const int window = 2 * radius + 1;
  for (int line = 0; line < lines; ++line) {
    const uint8_t* in = m.data() + line * line_step;
    uint8_t* o = out.data() + line * line_step;
    const auto at = [&](int i) { return in[static_cast<size_t>(std::clamp(i, 0, length - 1)) * step] != 0; };
    int count = 0;
    for (int k = -radius; k <= radius; ++k) count += at(k);
    for (int i = 0; i < length; ++i) {
      o[static_cast<size_t>(i) * step] = erode ? count == window : count > 0;
      count += at(i + radius + 1) - at(i - radius);
    }
  }
  return out;
}

// Erosion (keep = 1 where the whole window is set) or dilation (any set), a square of `radius`.
Mask filtered(const Mask& m, int w, int h, int radius, bool erode) {
  return filtered_1d(filtered_1d(m, w, h, radius, erode, true), w, h, radius, erode, false);
}

// Removes 4-connected regions of fewer than `min_pixels` set pixels.
void drop_small_regions(Mask& m, int w, int h, int64_t min_pixels) {
  std::vector<int32_t> stack, region;
  Mask seen(m.size(), 0);
  for (int start = 0; start < w * h; ++start) {
    if (!m[start] || seen[start]) continue;
    region.clear();
    stack.assign(1, start);
    seen[start] = 1;
    while (!stack.empty()) {
      const int32_t p = stack.back();
      stack.pop_back();
      region.push_back(p);
      const int x = p % w, y = p / w;
      const int32_t next[4] = {x > 0 ? p - 1 : -1, x + 1 < w ? p + 1 : -1, y > 0 ? p - w : -1, y + 1 < h ? p + w : -1};
      for (const int32_t q : next)
        if (q >= 0 && m[q] && !seen[q]) {
          seen[q] = 1;
          stack.push_back(q);
        }
    }
    if (static_cast<int64_t>(region.size()) < min_pixels)
      for (const int32_t p : region) m[p] = 0;
  }
}

// Sets every unset pixel no path of unset pixels joins to the border: holes inside tissue (a
// lung's alveoli, a gland's lumen) are tissue's, not glass.
void fill_holes(Mask& m, int w, int h) {
  Mask outside(m.size(), 0);
  std::vector<int32_t> stack;
  const auto seed = [&](int x, int y) {
    const int32_t p = y * w + x;
    if (!m[p] && !outside[p]) {
      outside[p] = 1;
      stack.push_back(p);
    }
  };
  for (int x = 0; x < w; ++x) seed(x, 0), seed(x, h - 1);
  for (int y = 0; y < h; ++y) seed(0, y), seed(w - 1, y);
  while (!stack.empty()) {
    const int32_t p = stack.back();
    stack.pop_back();
    const int x = p % w, y = p / w;
    if (x > 0) seed(x - 1, y);
    if (x + 1 < w) seed(x + 1, y);
    if (y > 0) seed(x, y - 1);
    if (y + 1 < h) seed(x, y + 1);
  }
  for (size_t p = 0; p < m.size(); ++p) m[p] = m[p] || !outside[p];
}

// Each pixel the mean of its (2r+1) x (2r+1) neighbourhood (edges clamped), by running sums.
RgbImage box_blurred(const RgbImage& image, int r) {
  const int w = image.width, h = image.height;
  std::vector<double> rows(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int c = 0; c < 3; ++c) {
      double sum = 0;
      const auto at = [&](int x) { return image.pixels[(static_cast<size_t>(y) * w + std::clamp(x, 0, w - 1)) * 3 + c]; };
      for (int k = -r; k <= r; ++k) sum += at(k);
      for (int x = 0; x < w; ++x) {
        rows[(static_cast<size_t>(y) * w + x) * 3 + c] = sum / (2 * r + 1);
        sum += at(x + r + 1) - at(x - r);
      }
    }
  RgbImage out(w, h);
  for (int x = 0; x < w; ++x)
    for (int c = 0; c < 3; ++c) {
      double sum = 0;
      const auto at = [&](int y) { return rows[(static_cast<size_t>(std::clamp(y, 0, h - 1)) * w + x) * 3 + c]; };
      for (int k = -r; k <= r; ++k) sum += at(k);
      for (int y = 0; y < h; ++y) {
        out.pixels[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(std::lround(sum / (2 * r + 1)));
        sum += at(y + r + 1) - at(y - r);
      }
    }
  return out;
}

// The saturation above which a pixel is not glass: glass is the slide's least saturated mode, so
// its spread is measured among the pixels under Otsu's threshold (median + 8 MADs), and pale
// tissue, which Otsu's split of a strongly stained slide puts on the glass's side, is kept.
double glass_threshold(const std::vector<Hsv>& hsv, double otsu, double floor) {
  std::vector<double> glass;
  for (const Hsv& p : hsv)
    if (p.s <= otsu) glass.push_back(p.s);
  if (glass.empty()) return std::max(otsu, floor);
  std::nth_element(glass.begin(), glass.begin() + static_cast<std::ptrdiff_t>(glass.size() / 2), glass.end());
  const double median = glass[glass.size() / 2];
  for (double& v : glass) v = std::abs(v - median);
  std::nth_element(glass.begin(), glass.begin() + static_cast<std::ptrdiff_t>(glass.size() / 2), glass.end());
  const double mad = glass[glass.size() / 2];
  return std::clamp(median + 8 * 1.4826 * mad, floor, std::max(otsu, floor));
}

}  // namespace

int otsu_threshold(const std::vector<int64_t>& histogram) {
  double total = 0, sum = 0;
  for (size_t i = 0; i < histogram.size(); ++i) {
    total += static_cast<double>(histogram[i]);
    sum += static_cast<double>(i) * static_cast<double>(histogram[i]);
  }
  double weight = 0, running = 0, best = -1;
  int threshold = 0;
  for (size_t t = 0; t < histogram.size(); ++t) {
    weight += static_cast<double>(histogram[t]);
    running += static_cast<double>(t) * static_cast<double>(histogram[t]);
    if (weight == 0 || weight == total) continue;
    const double mean_below = running / weight, mean_above = (sum - running) / (total - weight);
    const double between = weight * (total - weight) * (mean_below - mean_above) * (mean_below - mean_above);
    if (between > best) {
      best = between;
      threshold = static_cast<int>(t);
    }
  }
  return threshold;
}

double TissueMask::fraction(const Box& box) const {
  const double x0 = box.x0 / downsample, x1 = box.x1 / downsample, y0 = box.y0 / downsample, y1 = box.y1 / downsample;
  double inside = 0, all = 0;
  for (int y = std::max(0, static_cast<int>(std::floor(y0))); y < std::min(height, static_cast<int>(std::ceil(y1))); ++y)
    for (int x = std::max(0, static_cast<int>(std::floor(x0))); x < std::min(width, static_cast<int>(std::ceil(x1))); ++x) {
      const double wx = std::min<double>(x + 1, x1) - std::max<double>(x, x0);
      const double wy = std::min<double>(y + 1, y1) - std::max<double>(y, y0);
      const double weight = std::max(0.0, wx) * std::max(0.0, wy);
      all += weight;
      inside += weight * at(x, y);
    }
  return all > 0 ? inside / all : 0;
}

RgbImage tissue_picture(const RgbImage& thumbnail, const TissueMask& mask) {
  RgbImage picture = thumbnail;
  for (int y = 0; y < mask.height; ++y)
    for (int x = 0; x < mask.width; ++x) {
      uint8_t* p = picture.pixels.data() + (static_cast<size_t>(y) * mask.width + x) * 3;
      const bool inside = mask.at(x, y);
      const bool edge = inside && ((x > 0 && !mask.at(x - 1, y)) || (y > 0 && !mask.at(x, y - 1)) ||
                                   (x + 1 < mask.width && !mask.at(x + 1, y)) || (y + 1 < mask.height && !mask.at(x, y + 1)));
      if (edge) {
        p[0] = 0, p[1] = 200, p[2] = 0;
      } else if (!inside) {
        for (int c = 0; c < 3; ++c) p[c] = static_cast<uint8_t>(128 + p[c] / 4);
      }
    }
  return picture;
}

double TissueMask::area_pixels() const {
  int64_t set = 0;
  for (const uint8_t v : tissue) set += v != 0;
  return static_cast<double>(set) * downsample * downsample;
}

TissueMask detect_tissue(const RgbImage& thumbnail, double downsample, const TissueOptions& options) {
  TissueMask mask;
  mask.width = thumbnail.width;
  mask.height = thumbnail.height;
  mask.downsample = downsample;
  const size_t n = static_cast<size_t>(thumbnail.width) * thumbnail.height;
  // Colour over a small neighbourhood: thin stained structure and the pale spaces between read
  // as one pale tissue, as a pathologist sees them at low power.
  const int radius = std::max(1, std::min(mask.width, mask.height) / 400);
  const RgbImage smooth = box_blurred(thumbnail, radius);
  std::vector<Hsv> hsv(n);
  std::vector<int64_t> histogram(256, 0);
  for (size_t i = 0; i < n; ++i) {
    hsv[i] = hsv_of(smooth.pixels.data() + 3 * i);
    ++histogram[static_cast<size_t>(std::lround(hsv[i].s * 255))];
  }
  mask.threshold = glass_threshold(hsv, otsu_threshold(histogram) / 255.0, options.min_saturation);
  Mask m(n);
  for (size_t i = 0; i < n; ++i)
    m[i] = hsv[i].s > mask.threshold && hsv[i].v > options.min_value && !pen_hue(hsv[i].h);
  m = filtered(filtered(m, mask.width, mask.height, 1, true), mask.width, mask.height, 1, false);   // opening
  // Closing over about 1/60 of the thumbnail: the gaps between thin structures (alveolar walls,
  // glands) close, and fill_holes then takes the spaces they enclose.
  const int closing = std::max(3, std::min(mask.width, mask.height) / 60);
  m = filtered(filtered(m, mask.width, mask.height, closing, false), mask.width, mask.height, closing, true);
  drop_small_regions(m, mask.width, mask.height,
                     std::max<int64_t>(4, static_cast<int64_t>(options.min_area_fraction * static_cast<double>(n))));
  fill_holes(m, mask.width, mask.height);
  mask.tissue = std::move(m);
  char method[320];
  std::snprintf(method, sizeof method,
                "colour averaged over %dx%d pixels; saturation > %.3f (above the glass: its median + 8 MADs, at most "
                "Otsu's, at least %.3f), value > %.2f, not green or blue; opening 3x3, closing %dx%d, regions under "
                "%.2g of the slide dropped, holes filled; on a %d x %d thumbnail",
                2 * radius + 1, 2 * radius + 1, mask.threshold, options.min_saturation, options.min_value,
                2 * closing + 1, 2 * closing + 1, options.min_area_fraction, mask.width, mask.height);
  mask.method = method;
  return mask;
}

}  // namespace histotrain
