#include "synth/synth_slide.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "slide/pyramid_tiff.h"
#include "synth/stain_canvas.h"
#include "synth/synth.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

using synth::kPi;
using synth::mix;
using synth::Rng;

// Glass: near white, with a faint uneven tint.
void paint_glass(RgbImage& slide, Rng& rng) {
  const double tint[3] = {rng.uniform(236, 246), rng.uniform(236, 246), rng.uniform(238, 248)};
  for (int y = 0; y < slide.height; ++y) {
    uint8_t* row = slide.row(y);
    for (int x = 0; x < slide.width; ++x)
      for (int c = 0; c < 3; ++c)
        row[3 * x + c] = static_cast<uint8_t>(std::clamp(tint[c] + 3 * std::sin(x * 0.003 + c) * std::cos(y * 0.002), 0.0, 255.0));
  }
}

// An irregular blob around (cx, cy): 48 vertices whose radius wanders smoothly about `r`.
Polygon blob(Rng& rng, double cx, double cy, double rx, double ry) {
  const int n = 48;
  double phase[3] = {rng.uniform(0, 2 * kPi), rng.uniform(0, 2 * kPi), rng.uniform(0, 2 * kPi)};
  std::vector<Point> ring;
  for (int i = 0; i < n; ++i) {
    const double a = 2 * kPi * i / n;
    const double wobble = 1 + 0.12 * std::sin(2 * a + phase[0]) + 0.08 * std::sin(3 * a + phase[1]) +
                          0.05 * std::sin(5 * a + phase[2]);
    ring.push_back({cx + rx * wobble * std::cos(a), cy + ry * wobble * std::sin(a)});
  }
  return {{ring}};
}

// Fills `region` with `label`'s synthetic tissue, texture tiles laid edge to edge, all in the
// slide's one stain.
void paint_region(RgbImage& slide, const Annotation& region, int texture, uint64_t seed, const StainStyle& stain) {
  const Box box = bounds(region.polygon);
  std::map<std::pair<int, int>, RgbImage> textures;
  for (int y = std::max(0, static_cast<int>(box.y0)); y < std::min(slide.height, static_cast<int>(box.y1) + 1); ++y)
    for (int x = std::max(0, static_cast<int>(box.x0)); x < std::min(slide.width, static_cast<int>(box.x1) + 1); ++x) {
      if (!contains(region.polygon, x + 0.5, y + 0.5)) continue;
      const std::pair<int, int> cell{x / texture, y / texture};
      auto it = textures.find(cell);
      if (it == textures.end())
        it = textures.emplace(cell, render_synthetic_tile(region.label, texture,
                                                          mix(seed, static_cast<uint64_t>(cell.first * 7919 + cell.second)),
                                                          &stain))
                 .first;
      const uint8_t* t = it->second.pixels.data() + (static_cast<size_t>(y % texture) * texture + x % texture) * 3;
      // The section itself takes a little eosin everywhere, its clear spaces too: a faint pink
      // where the tile's painter left white (a slide's lumens and alveoli are not glass).
      uint8_t* out = slide.row(y) + 3 * x;
      out[0] = t[0];
      out[1] = static_cast<uint8_t>(t[1] * 0.88);
      out[2] = static_cast<uint8_t>(t[2] * 0.95);
    }
}

// A fold: tissue lying on itself, darker and more stained, along a band across `region`.
void paint_fold(RgbImage& slide, const Annotation& region, Rng& rng) {
  const Box box = bounds(region.polygon);
  const double angle = rng.uniform(0, kPi), width = 0.12 * std::min(box.x1 - box.x0, box.y1 - box.y0);
  const double cx = (box.x0 + box.x1) / 2, cy = (box.y0 + box.y1) / 2, c = std::cos(angle), s = std::sin(angle);
  for (int y = std::max(0, static_cast<int>(box.y0)); y < std::min(slide.height, static_cast<int>(box.y1)); ++y)
    for (int x = std::max(0, static_cast<int>(box.x0)); x < std::min(slide.width, static_cast<int>(box.x1)); ++x) {
      const double across = std::abs(-(x - cx) * s + (y - cy) * c);
      if (across > width || !contains(region.polygon, x + 0.5, y + 0.5)) continue;
      uint8_t* p = slide.row(y) + 3 * x;
      for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(p[k] * 0.62);
    }
}

// A pen stroke on the glass: a thick wavy line in marker blue or green.
void paint_pen(RgbImage& slide, Rng& rng, double x0, double y0, double x1, double y1, bool blue) {
  const uint8_t colour[3] = {static_cast<uint8_t>(blue ? 25 : 30), static_cast<uint8_t>(blue ? 60 : 140),
                             static_cast<uint8_t>(blue ? 170 : 60)};
  const double radius = 0.004 * slide.width + 4, phase = rng.uniform(0, 2 * kPi);
  const int steps = 2000;
  for (int i = 0; i <= steps; ++i) {
    const double t = static_cast<double>(i) / steps;
    const double px = x0 + (x1 - x0) * t + 0.02 * slide.width * std::sin(6 * t + phase), py = y0 + (y1 - y0) * t;
    for (int y = static_cast<int>(py - radius); y <= static_cast<int>(py + radius); ++y)
      for (int x = static_cast<int>(px - radius); x <= static_cast<int>(px + radius); ++x)
        if (x >= 0 && y >= 0 && x < slide.width && y < slide.height && std::hypot(x - px, y - py) <= radius)
          std::copy(colour, colour + 3, slide.row(y) + 3 * x);
  }
}

// Dust: small dark grey specks on the glass.
void paint_dust(RgbImage& slide, Rng& rng, const std::vector<Annotation>& regions) {
  for (int i = 0; i < 60; ++i) {
    const double cx = rng.uniform(0, slide.width), cy = rng.uniform(0, slide.height), r = rng.uniform(1.5, 5);
    bool on_tissue = false;
    for (const auto& region : regions) on_tissue = on_tissue || contains(region.polygon, cx, cy);
    if (on_tissue) continue;
    const auto grey = static_cast<uint8_t>(rng.integer(40, 110));
    for (int y = static_cast<int>(cy - r); y <= static_cast<int>(cy + r); ++y)
      for (int x = static_cast<int>(cx - r); x <= static_cast<int>(cx + r); ++x)
        if (x >= 0 && y >= 0 && x < slide.width && y < slide.height && std::hypot(x - cx, y - cy) <= r)
          std::fill(slide.row(y) + 3 * x, slide.row(y) + 3 * x + 3, grey);
  }
}

}  // namespace

RgbImage paint_synthetic_slide(const SyntheticSlideOptions& o, std::vector<Annotation>& regions) {
  if (o.width < 256 || o.height < 256 || static_cast<int64_t>(o.width) * o.height > (int64_t{1} << 30))
    throw UsageError("a synthetic slide is from 256 x 256 to 2^30 pixels");
  const std::vector<std::string> classes = o.classes.empty() ? lc25000_classes() : o.classes;
  Rng rng(mix(o.seed, 0x5117de));
  RgbImage slide(o.width, o.height);
  paint_glass(slide, rng);
  // Regions in a grid of cells, each a blob filling most of its cell; a margin on the right for pen.
  const int n = static_cast<int>(classes.size());
  const int columns = std::max(1, static_cast<int>(std::ceil(std::sqrt(n * 1.3))));
  const int rows = (n + columns - 1) / columns;
  const double usable = 0.82 * o.width, cell_w = usable / columns, cell_h = static_cast<double>(o.height) / rows;
  regions.clear();
  for (int i = 0; i < n; ++i) {
    const double cx = (i % columns + 0.5) * cell_w, cy = (i / columns + 0.5) * cell_h;
    regions.push_back({classes[static_cast<size_t>(i)], blob(rng, cx, cy, 0.36 * cell_w, 0.36 * cell_h)});
  }
  // One stain for the slide, as one staining run gives; a moderate section thickness.
  const StainStyle stain = draw_stain_style(rng, 0.9, 1.3);
  for (size_t i = 0; i < regions.size(); ++i) paint_region(slide, regions[i], o.texture, mix(o.seed, i + 1), stain);
  if (o.fold && !regions.empty()) paint_fold(slide, regions.front(), rng);
  if (o.pen) {
    paint_pen(slide, rng, 0.87 * o.width, 0.1 * o.height, 0.90 * o.width, 0.85 * o.height, true);
    paint_pen(slide, rng, 0.94 * o.width, 0.2 * o.height, 0.96 * o.width, 0.7 * o.height, false);
  }
  if (o.dust) paint_dust(slide, rng, regions);
  return slide;
}

SyntheticSlide write_synthetic_slide(const SyntheticSlideOptions& o) {
  if (o.mpp <= 0 || o.mpp > 100) throw UsageError("--mpp must be in (0, 100] microns per pixel");
  SyntheticSlide result;
  const RgbImage level0 = paint_synthetic_slide(o, result.regions);
  const std::vector<RgbImage> levels = pyramid_levels(level0);
  write_pyramid_tiff(levels, o.out, o.mpp);
  result.levels = static_cast<int>(levels.size());
  std::vector<GeoFeature> features;
  const auto& classes = lc25000_classes();
  for (const auto& region : result.regions) {
    const auto k = static_cast<size_t>(std::find(classes.begin(), classes.end(), region.label) - classes.begin());
    features.push_back({region.polygon, region.label, class_colour(k), {}});
  }
  fs::path geojson(o.out);
  geojson.replace_extension(".geojson");
  write_file_atomically(geojson, geojson_text(features, "annotation"));
  result.geojson = geojson.string();
  return result;
}

}  // namespace histotrain
