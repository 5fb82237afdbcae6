// The five classes' tissue, painted as stain densities and turned into RGB (synth.h says how).
#include <map>

#include "synth/stain_canvas.h"
#include "synth/synth.h"
#include "util/errors.h"

namespace histotrain {

using synth::kPi;
using synth::Rng;
using synth::smoothstep;
using synth::StainCanvas;
using synth::ValueNoise;

namespace {

// Eosin background with fibres: anisotropic noise stretched along a random direction.
void paint_stroma(StainCanvas& c, Rng& rng, double density, double fibre_contrast) {
  const ValueNoise fibres(rng.next()), patches(rng.next());
  const double angle = rng.uniform(0, kPi), ca = std::cos(angle), sa = std::sin(angle);
  const int n = c.size();
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      const double u = static_cast<double>(x) / n, v = static_cast<double>(y) / n;
      const double along = (u * ca + v * sa) * 6, across = (-u * sa + v * ca) * 60;
      const double f = fibres.at(along, across), p = patches.at(u * 5, v * 5);
      c.e(x, y) += static_cast<float>(density * (1 - fibre_contrast + 2 * fibre_contrast * f) * (0.7 + 0.6 * p));
    }
  }
}

// Scattered nuclei (lymphocytes, fibroblasts) over a region; `inside` filters positions.
void scatter_nuclei(StainCanvas& c, Rng& rng, const ValueNoise& chromatin, int count, double radius, double elongation,
                    double density, const std::function<bool(double, double)>& inside = nullptr) {
  for (int i = 0; i < count; ++i) {
    const double x = rng.uniform(), y = rng.uniform();
    if (inside && !inside(x, y)) continue;
    const double r = radius * rng.uniform(0.8, 1.2);
    c.nucleus(x, y, r * elongation, r, rng.uniform(0, kPi), density * rng.uniform(0.85, 1.15), chromatin);
  }
}

// A gland: an irregular closed outline (radius varies with angle), epithelium along its rim and a
// lumen inside. rho(x, y) < 1 inside the outline.
struct Gland {
  double cx, cy, radius, aspect, angle;
  double amp[3], phase[3];

  Gland(Rng& rng, double r_lo, double r_hi, double irregularity) {
    cx = rng.uniform(0.05, 0.95);
    cy = rng.uniform(0.05, 0.95);
    radius = rng.uniform(r_lo, r_hi);
    aspect = rng.uniform(1.0, 1.0 + irregularity * 1.5);
    angle = rng.uniform(0, kPi);
    for (int k = 0; k < 3; ++k) {
      amp[k] = irregularity * rng.uniform(0, 0.25) / (k + 1);
      phase[k] = rng.uniform(0, 2 * kPi);
    }
  }
  double outline(double theta) const {
    double f = 1;
    for (int k = 0; k < 3; ++k) f += amp[k] * std::sin((k + 2) * theta + phase[k]);
    return radius * f;
  }
  // Position at relative radius rho along direction theta.
  void point(double rho, double theta, double& x, double& y) const {
    const double r = rho * outline(theta);
    const double u = r * std::cos(theta) * aspect, v = r * std::sin(theta);
    x = cx + u * std::cos(angle) - v * std::sin(angle);
    y = cy + u * std::sin(angle) + v * std::cos(angle);
  }
  void polar(double x, double y, double& rho, double& theta) const {
    const double dx = x - cx, dy = y - cy;
    const double u = (dx * std::cos(angle) + dy * std::sin(angle)) / aspect;
    const double v = -dx * std::sin(angle) + dy * std::cos(angle);
    theta = std::atan2(v, u);
    rho = std::sqrt(u * u + v * v) / outline(theta);
  }
};

struct GlandStyle {
  double epithelium = 0.3;     // rim thickness, as a fraction of the radius
  double cytoplasm_e = 0.45, cytoplasm_h = 0.12;
  double nucleus_r = 0.01, nucleus_elongation = 1.3, nucleus_density = 1.3;
  double nuclear_spacing = 2.4;  // in nucleus radii along the rim
  int rows = 1;                  // stratification
  double row_spread = 0.15;      // radial scatter of nuclei within the rim
  double basal = 0.85;           // where nuclei sit across the rim (1 = outer edge)
  double lumen_keep = 0.03;      // stain left in the lumen
  double pleomorphism = 0.15;
  int goblets = 0;               // pale mucin vacuoles per gland
  bool necrotic_lumen = false;   // pink debris and nuclear dust in the lumen
  int cribriform = 0;            // extra small lumens inside the epithelium
};

void paint_gland(StainCanvas& c, Rng& rng, const ValueNoise& chromatin, const Gland& g, const GlandStyle& s) {
  const int n = c.size();
  const double reach = g.radius * (1 + 3 * 0.25) * g.aspect + 0.02;
  const int x0 = std::max(0, static_cast<int>((g.cx - reach) * n)), x1 = std::min(n - 1, static_cast<int>((g.cx + reach) * n));
  const int y0 = std::max(0, static_cast<int>((g.cy - reach) * n)), y1 = std::min(n - 1, static_cast<int>((g.cy + reach) * n));
  const double inner = 1 - s.epithelium;
  for (int py = y0; py <= y1; ++py) {
    for (int px = x0; px <= x1; ++px) {
      double rho, theta;
      g.polar((px + 0.5) / n, (py + 0.5) / n, rho, theta);
      if (rho > 1.05) continue;
      const double rim = 1 - smoothstep(0.97, 1.05, rho);
      const double lumen = 1 - smoothstep(inner - 0.05, inner + 0.03, rho);
      // Epithelium replaces stroma; the lumen is nearly empty.
      const double keep = s.lumen_keep;
      c.e(px, py) = static_cast<float>(c.e(px, py) * (1 - rim) + rim * (s.cytoplasm_e * (1 - lumen) + keep * lumen));
      c.h(px, py) = static_cast<float>(c.h(px, py) * (1 - rim) + rim * (s.cytoplasm_h * (1 - lumen) + keep * lumen));
    }
  }
  if (s.necrotic_lumen) {
    for (int i = 0; i < 6; ++i) {
      double x, y;
      g.point(rng.uniform(0, inner * 0.7), rng.uniform(0, 2 * kPi), x, y);
      const double r = g.radius * inner * rng.uniform(0.15, 0.35);
      c.add_ellipse(x, y, r, r * rng.uniform(0.6, 1), rng.uniform(0, kPi), 0.05, 0.55, 0.6);
    }
    for (int i = 0; i < 40; ++i) {  // karyorrhectic dust
      double x, y;
      g.point(rng.uniform(0, inner * 0.8), rng.uniform(0, 2 * kPi), x, y);
      const double r = s.nucleus_r * rng.uniform(0.2, 0.45);
      c.nucleus(x, y, r, r, 0, 1.6, chromatin);
    }
  }
  for (int i = 0; i < s.cribriform; ++i) {
    double x, y;
    g.point(rng.uniform(inner + 0.05, 0.92), rng.uniform(0, 2 * kPi), x, y);
    const double r = g.radius * s.epithelium * rng.uniform(0.2, 0.35);
    c.clear_ellipse(x, y, r, r, 0, 0.05);
  }
  for (int i = 0; i < s.goblets; ++i) {
    double x, y;
    g.point(rng.uniform(inner + 0.05, 0.8), rng.uniform(0, 2 * kPi), x, y);
    const double r = g.radius * s.epithelium * rng.uniform(0.22, 0.32);
    c.clear_ellipse(x, y, r, r * 1.3, rng.uniform(0, kPi), 0.12);
  }
  // Nuclei along the rim, pointing outwards (columnar cells), `rows` deep.
  const double mean_outline = g.radius * (1 + g.aspect) / 2;
  const int per_row = std::max(6, static_cast<int>(2 * kPi * mean_outline * s.basal / (s.nucleus_r * s.nuclear_spacing)));
  for (int row = 0; row < s.rows; ++row) {
    for (int k = 0; k < per_row; ++k) {
      const double theta = (k + rng.uniform(-0.3, 0.3) + 0.5 * row) * 2 * kPi / per_row;
      const double rho = inner + s.epithelium * std::clamp(s.basal - row * 0.22 + rng.normal(0, s.row_spread), 0.1, 0.95);
      double x, y;
      g.point(rho, theta, x, y);
      const double r = s.nucleus_r * std::max(0.4, 1 + rng.normal(0, s.pleomorphism));
      const double radial = std::atan2(y - g.cy, x - g.cx);
      c.nucleus(x, y, r * s.nucleus_elongation, r, radial, s.nucleus_density * rng.uniform(0.85, 1.15), chromatin);
    }
  }
}

// Normal lung: alveolar air spaces separated by thin septa with few flat nuclei.
void paint_lung_n(StainCanvas& c, Rng& rng, const ValueNoise& chromatin) {
  const int seeds = rng.integer(7, 14);
  std::vector<double> sx(seeds), sy(seeds);
  for (int i = 0; i < seeds; ++i) {
    sx[i] = rng.uniform(-0.1, 1.1);
    sy[i] = rng.uniform(-0.1, 1.1);
  }
  const double thickness = rng.uniform(0.012, 0.022);
  const ValueNoise wobble(rng.next());
  const int n = c.size();
  std::vector<uint8_t> septum(static_cast<size_t>(n) * n);
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      const double u = (x + 0.5) / n, v = (y + 0.5) / n;
      double d1 = 1e9, d2 = 1e9;
      for (int i = 0; i < seeds; ++i) {
        const double d = std::hypot(u - sx[i], v - sy[i]);
        if (d < d1) {
          d2 = d1;
          d1 = d;
        } else if (d < d2) {
          d2 = d;
        }
      }
      const double t = thickness * (0.6 + 0.8 * wobble.at(u * 12, v * 12));
      const double w = 1 - smoothstep(t * 0.5, t, d2 - d1);
      septum[static_cast<size_t>(y) * n + x] = w > 0.5;
      c.e(x, y) = static_cast<float>(0.03 + w * c.e(x, y) * 1.4);
      c.h(x, y) = static_cast<float>(0.01 + w * 0.08);
    }
  }
  auto on_septum = [&](double x, double y) {
    const int px = std::clamp(static_cast<int>(x * n), 0, n - 1), py = std::clamp(static_cast<int>(y * n), 0, n - 1);
    return septum[static_cast<size_t>(py) * n + px] != 0;
  };
  scatter_nuclei(c, rng, chromatin, rng.integer(150, 260), 0.007, 1.9, 1.1, on_septum);
  for (int i = 0; i < 120; ++i) {  // red blood cells in the capillaries
    const double x = rng.uniform(), y = rng.uniform();
    if (on_septum(x, y)) c.add_ellipse(x, y, 0.005, 0.005, 0, 0, 0.6, 0.3);
  }
}

// Lung adenocarcinoma: acinar glands lined by large atypical nuclei, in cellular stroma.
void paint_lung_aca(StainCanvas& c, Rng& rng, const ValueNoise& chromatin) {
  scatter_nuclei(c, rng, chromatin, rng.integer(60, 120), 0.007, 2.2, 1.1);
  GlandStyle style;
  style.epithelium = rng.uniform(0.28, 0.4);
  style.nucleus_r = rng.uniform(0.011, 0.014);
  style.nucleus_elongation = 1.25;
  style.nucleus_density = 1.35;
  style.nuclear_spacing = 2.3;
  style.pleomorphism = 0.25;
  style.basal = 0.6;
  style.row_spread = 0.2;
  const int glands = rng.integer(4, 8);
  for (int i = 0; i < glands; ++i) paint_gland(c, rng, chromatin, Gland(rng, 0.07, 0.14, 0.7), style);
}

// Squamous cell carcinoma: solid nests of large polygonal cells with dense pink cytoplasm,
// large pleomorphic nuclei, and keratin pearls; no lumens.
void paint_lung_scc(StainCanvas& c, Rng& rng, const ValueNoise& chromatin) {
  const ValueNoise nest(rng.next());
  const double nest_scale = rng.uniform(2.0, 3.5), threshold = rng.uniform(0.35, 0.5);
  auto in_nest = [&](double x, double y) { return nest.at(x * nest_scale, y * nest_scale) > threshold; };
  const int n = c.size();
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      if (in_nest((x + 0.5) / n, (y + 0.5) / n)) {
        c.e(x, y) = static_cast<float>(0.6 + 0.15 * chromatin.at(x * 0.05, y * 0.05));
        c.h(x, y) = 0.08f;
      }
  const double spacing = rng.uniform(0.04, 0.05);
  for (double gy = spacing / 2; gy < 1; gy += spacing) {
    for (double gx = spacing / 2; gx < 1; gx += spacing) {
      const double x = gx + rng.normal(0, spacing * 0.15), y = gy + rng.normal(0, spacing * 0.15);
      if (!in_nest(x, y)) continue;
      const double r = rng.uniform(0.011, 0.019);
      c.nucleus(x, y, r * rng.uniform(1.0, 1.5), r, rng.uniform(0, kPi), rng.uniform(1.3, 1.8), chromatin);
    }
  }
  scatter_nuclei(c, rng, chromatin, 70, 0.006, 2.5, 1.1, [&](double x, double y) { return !in_nest(x, y); });
  const int pearls = rng.integer(1, 3);
  for (int i = 0; i < pearls; ++i) {
    const double cx = rng.uniform(0.15, 0.85), cy = rng.uniform(0.15, 0.85), r = rng.uniform(0.05, 0.09);
    // Concentric lamellae of keratin: dense eosin, no nuclei.
    c.for_ellipse(cx, cy, r, r * 0.85, 0, 0.1, [&](int px, int py, double rho) {
      const double inside = 1 - smoothstep(0.9, 1.1, rho);
      const double lamellae = 0.5 + 0.5 * std::cos(rho * 2 * kPi * 5);
      c.h(px, py) *= static_cast<float>(1 - inside);
      c.e(px, py) = static_cast<float>(c.e(px, py) * (1 - inside) + inside * (0.55 + 0.45 * lamellae));
    });
  }
}

// Normal colon: regular round crypts with basal small nuclei and goblet cells, in lamina propria
// full of small round lymphocytes.
void paint_colon_n(StainCanvas& c, Rng& rng, const ValueNoise& chromatin) {
  scatter_nuclei(c, rng, chromatin, rng.integer(300, 450), 0.0055, 1.0, 1.5);
  GlandStyle style;
  style.epithelium = rng.uniform(0.45, 0.55);
  style.cytoplasm_e = 0.3;
  style.cytoplasm_h = 0.08;
  style.nucleus_r = 0.0065;
  style.nucleus_elongation = 1.5;
  style.nucleus_density = 1.3;
  style.nuclear_spacing = 2.6;
  style.basal = 0.9;
  style.row_spread = 0.03;
  style.pleomorphism = 0.08;
  style.goblets = 10;
  const double r = rng.uniform(0.065, 0.085), pitch = r * rng.uniform(2.3, 2.7);
  const double angle = rng.uniform(0, kPi), ca = std::cos(angle), sa = std::sin(angle);
  for (int row = -8; row <= 8; ++row) {
    for (int col = -8; col <= 8; ++col) {
      const double u = (col + 0.5 * (row & 1)) * pitch, v = row * pitch * 0.866;
      const double x = 0.5 + u * ca - v * sa + rng.normal(0, r * 0.08), y = 0.5 + u * sa + v * ca + rng.normal(0, r * 0.08);
      if (x < -r || x > 1 + r || y < -r || y > 1 + r) continue;
      Gland g(rng, r * 0.95, r * 1.05, 0.12);
      g.cx = x;
      g.cy = y;
      paint_gland(c, rng, chromatin, g, style);
    }
  }
}

// Colon adenocarcinoma: large irregular back-to-back glands, stratified pencil-shaped nuclei,
// cribriform spaces and dirty necrosis in the lumens.
void paint_colon_aca(StainCanvas& c, Rng& rng, const ValueNoise& chromatin) {
  scatter_nuclei(c, rng, chromatin, rng.integer(40, 80), 0.007, 2.4, 1.1);
  GlandStyle style;
  style.epithelium = rng.uniform(0.3, 0.42);
  style.cytoplasm_e = 0.5;
  style.cytoplasm_h = 0.2;
  style.nucleus_r = rng.uniform(0.0065, 0.008);
  style.nucleus_elongation = 2.6;
  style.nucleus_density = 1.0;
  style.nuclear_spacing = 1.6;
  style.rows = 3;
  style.basal = 0.8;
  style.row_spread = 0.12;
  style.pleomorphism = 0.25;
  style.necrotic_lumen = true;
  style.cribriform = rng.integer(0, 4);
  const int glands = rng.integer(3, 6);
  for (int i = 0; i < glands; ++i) paint_gland(c, rng, chromatin, Gland(rng, 0.12, 0.22, 1.0), style);
}

}  // namespace

StainStyle draw_stain_style(Rng& rng, double min_thickness, double max_thickness) {
  StainStyle s{{0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, {}};
  // Staining strength and section thickness vary a lot between slides; drawing them per tile
  // keeps brightness and hue from telling the classes apart.
  const double thickness = rng.uniform(min_thickness, max_thickness);
  const double h_strength = thickness * rng.uniform(0.7, 1.8), e_strength = thickness * rng.uniform(0.6, 2.0);
  for (int k = 0; k < 3; ++k) {
    s.h[k] *= h_strength * std::max(0.3, 1 + rng.normal(0, 0.15));
    s.e[k] *= e_strength * std::max(0.3, 1 + rng.normal(0, 0.15));
  }
  for (int k = 0; k < 3; ++k) s.background[k] = rng.uniform(0, k == 1 ? 0.08 : 0.06);
  return s;
}

namespace {

// Beer-Lambert: RGB = 255 exp(-(h * H + e * E + background)) with the stain `style`.
RgbImage compose(StainCanvas& c, const StainStyle& style, uint64_t grain_seed) {
  const double* hv = style.h;
  const double* ev = style.e;
  const double* background = style.background;
  const ValueNoise grain(grain_seed);
  const int n = c.size();
  RgbImage image(n, n);
  for (int y = 0; y < n; ++y) {
    uint8_t* out = image.row(y);
    for (int x = 0; x < n; ++x) {
      const double h = c.h(x, y), e = c.e(x, y);
      const double speckle = 1 + 0.08 * (grain.at(x * 0.7, y * 0.7) - 0.5);
      for (int k = 0; k < 3; ++k) {
        const double od = (h * hv[k] + e * ev[k]) * speckle + background[k];
        out[3 * x + k] = static_cast<uint8_t>(std::clamp(255.0 * std::exp(-od), 0.0, 255.0));
      }
    }
  }
  return image;
}

using Painter = void (*)(StainCanvas&, Rng&, const ValueNoise&);

Painter painter_for(const std::string& class_name) {
  static const std::map<std::string, Painter> painters = {
      {"colon_aca", paint_colon_aca}, {"colon_n", paint_colon_n}, {"lung_aca", paint_lung_aca},
      {"lung_n", paint_lung_n},       {"lung_scc", paint_lung_scc}};
  auto it = painters.find(class_name);
  if (it == painters.end()) throw Error("no synthetic tissue for class '" + class_name + "'");
  return it->second;
}

}  // namespace

const std::vector<std::string>& lc25000_classes() {
  static const std::vector<std::string> classes = {"colon_aca", "colon_n", "lung_aca", "lung_n", "lung_scc"};
  return classes;
}

RgbImage render_synthetic_tile(const std::string& class_name, int size, uint64_t seed, const StainStyle* style) {
  const Painter paint = painter_for(class_name);
  Rng rng(seed);
  StainCanvas canvas(size);
  const ValueNoise chromatin(rng.next());
  paint_stroma(canvas, rng, rng.uniform(0.3, 0.5), rng.uniform(0.15, 0.35));
  paint(canvas, rng, chromatin);
  const StainStyle own = style ? *style : draw_stain_style(rng);
  return compose(canvas, own, rng.next());
}

}  // namespace histotrain
