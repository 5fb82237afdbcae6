#include "core/slide_report.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "data/png_encode.h"
#include "slide/geojson.h"
#include "slide/tile_grid.h"
#include "util/csv.h"
#include "util/files.h"
#include "util/gnuplot.h"

namespace histotrain {

namespace fs = std::filesystem;

namespace {

constexpr uint8_t kOverlayAlpha = 130;
// The heat scale: blue (0) through pale yellow (0.5) to red (1), in the pictures and gnuplot's palette alike.
const std::array<int, 3> kHeat[] = {{44, 123, 182}, {255, 255, 191}, {215, 25, 28}};

std::string hex(const std::array<int, 3>& c) {
  char text[16];
  std::snprintf(text, sizeof text, "#%02x%02x%02x", c[0], c[1], c[2]);
  return text;
}

std::array<int, 3> heat_colour(double v) {
  const double t = std::clamp(v, 0.0, 1.0) * 2;
  const auto& a = kHeat[t < 1 ? 0 : 1];
  const auto& b = kHeat[t < 1 ? 1 : 2];
  const double f = t < 1 ? t : t - 1;
  return {static_cast<int>(std::lround(a[0] + (b[0] - a[0]) * f)), static_cast<int>(std::lround(a[1] + (b[1] - a[1]) * f)),
          static_cast<int>(std::lround(a[2] + (b[2] - a[2]) * f))};
}

// RGBA at the thumbnail's size: each tile's square filled by `colour_of(tile)` at `alpha`, its
// edge at `edge_alpha` (an edge nearly opaque keeps the colour readable over a stain like it).
template <class ColourOf>
std::string tile_layer(const SlidePrediction& p, uint8_t alpha, uint8_t edge_alpha, ColourOf colour_of) {
  const int w = p.thumbnail.width, h = p.thumbnail.height;
  std::string rgba(static_cast<size_t>(w) * h * 4, '\0');
  const double d = p.tissue.downsample, side = static_cast<double>(p.geometry.side0);
  for (size_t t = 0; t < p.tiles.size(); ++t) {
    const std::array<int, 3> c = colour_of(t);
    const int x0 = static_cast<int>(p.tiles[t].x / d), y0 = static_cast<int>(p.tiles[t].y / d);
    const int x1 = std::min(w, static_cast<int>(std::ceil((p.tiles[t].x + side) / d)));
    const int y1 = std::min(h, static_cast<int>(std::ceil((p.tiles[t].y + side) / d)));
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) {
        char* px = rgba.data() + (static_cast<size_t>(y) * w + x) * 4;
        px[0] = static_cast<char>(c[0]), px[1] = static_cast<char>(c[1]), px[2] = static_cast<char>(c[2]);
        const bool edge = x == x0 || y == y0 || x == x1 - 1 || y == y1 - 1;
        px[3] = static_cast<char>(edge ? edge_alpha : alpha);
      }
  }
  return rgba;
}

// The gnuplot lines that draw the thumbnail (thumbnail.rgb) with a layer (NAME.rgba) on top,
// y downwards as on the slide; `settings` come after the reset that starts each picture.
std::string picture_script(const SlidePrediction& p, const std::string& png, const std::string& layer,
                           const std::string& title, const std::string& settings) {
  const int w = p.thumbnail.width, h = p.thumbnail.height;
  const double aspect = static_cast<double>(h) / w;
  const int px_w = 1100, px_h = static_cast<int>(std::clamp(120 + 900 * aspect, 400.0, 1400.0));
  std::ostringstream gp;
  gp << "reset\nset terminal pngcairo noenhanced size " << px_w << "," << px_h << " font ',11'\n" << gnuplot_output(png)
     << settings << "set title " << gnuplot_literal(title) << "\nunset xtics\nunset ytics\nunset border\nset size ratio -1\n"
     << "set xrange [0:" << w << "]\nset yrange [" << h << ":0]\n";
  gp << "plot 'thumbnail.rgb' binary array=(" << w << "," << h << ") format='%uchar%uchar%uchar' "
     << "with rgbimage notitle, " << gnuplot_literal(layer) << " binary array=(" << w << "," << h << ") "
     << "format='%uchar%uchar%uchar%uchar' with rgbalpha notitle";
  return gp.str();
}

std::string heatmap_script(const SlidePrediction& p, const std::string& class_name, const std::string& layer,
                           const std::string& png) {
  std::ostringstream settings, gp;
  settings << "set palette defined (0 '" << hex(kHeat[0]) << "', 0.5 '" << hex(kHeat[1]) << "', 1 '" << hex(kHeat[2])
           << "')\nset cbrange [0:1]\nset cblabel " << gnuplot_literal("probability of " + class_name) << "\nset colorbox\n";
  gp << picture_script(p, png, layer, "P(" + class_name + ") per tile, over the slide", settings.str())
     // An invisible point in palette colour, so that gnuplot draws the colour scale.
     << ", 'scale.dat' using 1:2:3 with points pt 7 ps 0 lc palette notitle\n";
  return gp.str();
}

std::string overlay_script(const SlidePrediction& p, const std::vector<std::string>& classes) {
  std::ostringstream gp;
  gp << picture_script(p, "overlay.png", "overlay.rgba", "Predicted class per tile", "set key outside right top\n");
  for (size_t k = 0; k < classes.size(); ++k)
    gp << ", NaN with boxes fs transparent solid " << kOverlayAlpha / 255.0 << " lc rgb '" << hex(class_colour(k))
       << "' title " << gnuplot_literal(classes[k]);
  gp << "\n";
  return gp.str();
}

std::string tiles_csv(const SlidePrediction& p, const std::vector<std::string>& classes) {
  std::string csv = "x,y,width,height,tissue,predicted";
  for (const auto& c : classes) csv += "," + csv_field("p_" + c);
  csv += "\n";
  char number[32];
  for (size_t t = 0; t < p.tiles.size(); ++t) {
    std::snprintf(number, sizeof number, "%.4f", p.tiles[t].tissue);
    csv += std::to_string(p.tiles[t].x) + "," + std::to_string(p.tiles[t].y) + "," + std::to_string(p.geometry.side0) +
           "," + std::to_string(p.geometry.side0) + "," + number + "," + csv_field(classes[static_cast<size_t>(p.predicted(t))]);
    for (int64_t k = 0; k < p.classes; ++k) {
      std::snprintf(number, sizeof number, ",%.6f", p.probabilities[t * static_cast<size_t>(p.classes) + k]);
      csv += number;
    }
    csv += "\n";
  }
  return csv;
}

std::vector<GeoFeature> tile_features(const SlidePrediction& p, const std::vector<std::string>& classes) {
  std::vector<GeoFeature> features;
  const auto side = static_cast<double>(p.geometry.side0);
  for (size_t t = 0; t < p.tiles.size(); ++t) {
    const double x = static_cast<double>(p.tiles[t].x), y = static_cast<double>(p.tiles[t].y);
    GeoFeature f;
    f.polygon.rings = {{{x, y}, {x + side, y}, {x + side, y + side}, {x, y + side}}};
    const auto k = static_cast<size_t>(p.predicted(t));
    f.classification = classes[k];
    f.colour = class_colour(k);
    for (size_t c = 0; c < classes.size(); ++c)
      f.measurements["p_" + classes[c]] = p.probabilities[t * classes.size() + c];
    f.measurements["tissue"] = p.tiles[t].tissue;
    features.push_back(std::move(f));
  }
  return features;
}

nlohmann::json summary_of(const SlideFile& slide, const SlidePrediction& p, const TrainedModel& trained) {
  const auto K = static_cast<size_t>(p.classes);
  std::vector<double> fraction(K, 0), mean(K, 0);
  for (size_t t = 0; t < p.tiles.size(); ++t) {
    fraction[static_cast<size_t>(p.predicted(t))] += 1.0 / static_cast<double>(p.tiles.size());
    for (size_t k = 0; k < K; ++k) mean[k] += p.probabilities[t * K + k] / static_cast<double>(p.tiles.size());
  }
  nlohmann::json fractions = nlohmann::json::object(), means = nlohmann::json::object();
  for (size_t k = 0; k < K; ++k) {
    fractions[trained.classes[k]] = fraction[k];
    means[trained.classes[k]] = mean[k];
  }
  const double mm2 = slide.mpp() > 0 ? p.tissue.area_pixels() * slide.mpp() * slide.mpp() / 1e6 : -1;
  return {{"slide", slide.path()},
          {"vendor", slide.vendor()},
          {"level0", {slide.width(), slide.height()}},
          {"mpp", slide.mpp() > 0 ? nlohmann::json(slide.mpp()) : nlohmann::json(nullptr)},
          {"mpp_from", slide.mpp_source()},
          {"tiles", p.tiles.size()},
          {"tile", {{"level0_side", p.geometry.side0}, {"pixels", p.geometry.tile_px}, {"mpp", p.geometry.mpp},
                    {"level_read", p.geometry.level}, {"model_input", trained.image_size}}},
          {"tissue_area_mm2", mm2 >= 0 ? nlohmann::json(mm2) : nlohmann::json(nullptr)},
          {"tissue_method", p.tissue.method},
          {"class_fractions", fractions},
          {"mean_probabilities", means},
          {"model", {{"checkpoint", trained.run.string()}, {"classes", trained.classes},
                     {"image_size", trained.image_size}, {"amp", precision_name(trained.precision)},
                     {"ran_as", p.model_path}}},
          {"seconds", {{"total", p.seconds}, {"thumbnail_and_tissue", p.tissue_seconds},
                       {"waiting_for_reads", p.read_seconds}, {"model", p.model_seconds}}},
          {"tiles_per_s", p.seconds > 0 ? static_cast<double>(p.tiles.size()) / p.seconds : 0.0}};
}

}  // namespace

nlohmann::json write_slide_outputs(const SlideFile& slide, const SlidePrediction& p, const TrainedModel& trained,
                                   const fs::path& folder) {
  ensure_writable_dir(folder);
  const auto& classes = trained.classes;
  write_file_atomically(folder / "tiles.csv", tiles_csv(p, classes));
  write_file_atomically(folder / "predictions.geojson", geojson_text(tile_features(p, classes), "detection"));
  write_file_atomically(folder / "tissue.png", encode_png(tissue_picture(p.thumbnail, p.tissue)));
  write_file_atomically(folder / "thumbnail.rgb",
                        std::string(p.thumbnail.pixels.begin(), p.thumbnail.pixels.end()));
  write_file_atomically(folder / "scale.dat", "0 0 0\n0 0 1\n");
  std::string gp;
  for (size_t k = 0; k < classes.size(); ++k) {
    const std::string layer = "heat_" + std::to_string(k) + ".rgba";
    write_file_atomically(folder / layer, tile_layer(p, 170, 170, [&](size_t t) {
                            return heat_colour(p.probabilities[t * classes.size() + k]);
                          }));
    gp += heatmap_script(p, classes[k], layer, "heatmap_" + safe_name(classes[k]) + ".png");
  }
  write_file_atomically(folder / "overlay.rgba", tile_layer(p, kOverlayAlpha, 230, [&](size_t t) {
                          return class_colour(static_cast<size_t>(p.predicted(t)));
                        }));
  gp += overlay_script(p, classes);
  write_file_atomically(folder / "pictures.gp", gp);
  nlohmann::json summary = summary_of(slide, p, trained);
  const std::string not_drawn = run_gnuplot(folder, "pictures.gp", "pictures.log");
  summary["pictures"] = not_drawn.empty() ? "drawn" : not_drawn;
  std::error_code ignored;  // the raw layers and the script were only for gnuplot (the log stays when it failed)
  fs::remove(folder / "pictures.gp", ignored);
  if (not_drawn.empty()) fs::remove(folder / "pictures.log", ignored);
  for (size_t k = 0; k < classes.size(); ++k) fs::remove(folder / ("heat_" + std::to_string(k) + ".rgba"), ignored);
  fs::remove(folder / "overlay.rgba", ignored);
  fs::remove(folder / "thumbnail.rgb", ignored);
  fs::remove(folder / "scale.dat", ignored);
  return summary;
}

}  // namespace histotrain
