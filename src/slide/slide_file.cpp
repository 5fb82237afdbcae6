#include "slide/slide_file.h"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "util/errors.h"

#ifdef HISTOTRAIN_WITH_OPENSLIDE
#include <openslide/openslide.h>
#endif

namespace histotrain {

namespace {

// A thumbnail's source level may hold at most this many pixels: reading more would take minutes.
constexpr int64_t kMaxThumbnailSource = int64_t{1} << 28;

#ifdef HISTOTRAIN_WITH_OPENSLIDE
openslide_t* handle(void* osr) { return static_cast<openslide_t*>(osr); }

std::string property(openslide_t* osr, const char* name) {
  const char* value = openslide_get_property_value(osr, name);
  return value ? value : "";
}

double number(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  return end && *end == '\0' && std::isfinite(v) ? v : 0;
}

// Microns per pixel from OpenSlide's property, else from the TIFF resolution tags it exposes.
double slide_mpp(openslide_t* osr, std::string& source) {
  const double mpp = number(property(osr, OPENSLIDE_PROPERTY_NAME_MPP_X));
  if (mpp > 0) {
    source = "the slide (openslide.mpp-x)";
    return mpp;
  }
  const double resolution = number(property(osr, "tiff.XResolution"));
  const std::string unit = property(osr, "tiff.ResolutionUnit");
  if (resolution > 0 && (unit == "centimeter" || unit == "inch")) {
    source = "the slide's TIFF resolution tags";
    return (unit == "centimeter" ? 10000.0 : 25400.0) / resolution;
  }
  return 0;
}
#endif

}  // namespace

#ifndef HISTOTRAIN_WITH_OPENSLIDE

bool slides_supported() { return false; }
SlideFile::SlideFile(const std::string& path, double) : path_(path) {
  throw Error("this build of histotrain reads no slides: install libopenslide-dev and configure again "
              "(./run.sh build does)");
}
SlideFile::~SlideFile() = default;
int SlideFile::best_level(double) const { return 0; }
RgbImage SlideFile::read(int64_t, int64_t, int, int64_t, int64_t) const { return {}; }
RgbImage SlideFile::thumbnail(int, double&) const { return {}; }

#else

bool slides_supported() { return true; }

SlideFile::SlideFile(const std::string& path, double mpp) : path_(path) {
  const char* vendor = openslide_detect_vendor(path.c_str());
  if (!vendor) throw Error("'" + path + "' is not a slide OpenSlide reads (an unknown format, or not a slide)");
  vendor_ = vendor;
  openslide_t* osr = openslide_open(path.c_str());
  if (!osr) throw Error("'" + path + "' cannot be opened as a slide");
  osr_ = osr;
  if (const char* error = openslide_get_error(osr)) {
    const std::string message = "'" + path + "' is damaged: " + error;
    openslide_close(osr);
    osr_ = nullptr;
    throw Error(message);
  }
  const int32_t count = openslide_get_level_count(osr);
  for (int32_t level = 0; level < count; ++level) {
    SlideLevel l;
    openslide_get_level_dimensions(osr, level, &l.width, &l.height);
    l.downsample = openslide_get_level_downsample(osr, level);
    levels_.push_back(l);
  }
  if (levels_.empty() || levels_.front().width <= 0 || levels_.front().height <= 0) {
    openslide_close(osr);
    osr_ = nullptr;
    throw Error("'" + path + "' has no readable level");
  }
  mpp_ = mpp > 0 ? mpp : slide_mpp(osr, mpp_source_);
  if (mpp > 0) mpp_source_ = "--mpp";
}

SlideFile::~SlideFile() {
  if (osr_) openslide_close(handle(osr_));
}

int SlideFile::best_level(double downsample) const {
  return std::max(0, static_cast<int>(openslide_get_best_level_for_downsample(handle(osr_), downsample)));
}

RgbImage SlideFile::read(int64_t x, int64_t y, int level, int64_t w, int64_t h) const {
  if (w <= 0 || h <= 0 || w * h > kMaxRegionPixels || level < 0 || level >= static_cast<int>(levels_.size()))
    throw Error("'" + path_ + "': a region of " + std::to_string(w) + " x " + std::to_string(h) + " pixels at level " +
                std::to_string(level) + " is not one histotrain reads");
  std::vector<uint32_t> argb(static_cast<size_t>(w * h));
  openslide_read_region(handle(osr_), argb.data(), x, y, level, w, h);
  if (const char* error = openslide_get_error(handle(osr_))) throw Error("'" + path_ + "': " + error);
  RgbImage image(static_cast<int>(w), static_cast<int>(h));
  uint8_t* out = image.pixels.data();
  for (const uint32_t pixel : argb) {  // premultiplied ARGB: on white, c + (255 - a)
    const uint32_t background = 255 - (pixel >> 24);
    *out++ = static_cast<uint8_t>(std::min<uint32_t>(255, ((pixel >> 16) & 0xff) + background));
    *out++ = static_cast<uint8_t>(std::min<uint32_t>(255, ((pixel >> 8) & 0xff) + background));
    *out++ = static_cast<uint8_t>(std::min<uint32_t>(255, (pixel & 0xff) + background));
  }
  return image;
}

RgbImage SlideFile::thumbnail(int max_side, double& downsample) const {
  const double wanted = std::max(1.0, static_cast<double>(std::max(width(), height())) / max_side);
  const int level = best_level(wanted);
  const SlideLevel& source = levels_[static_cast<size_t>(level)];
  if (source.width * source.height > kMaxThumbnailSource)
    throw Error("'" + path_ + "' has no pyramid level small enough for a thumbnail (the nearest, level " +
                std::to_string(level) + ", is " + std::to_string(source.width) + " x " + std::to_string(source.height) +
                " pixels): not a slide histotrain reads whole");
  const double factor = wanted / source.downsample;  // source pixels per thumbnail pixel
  const int tw = std::max(1, static_cast<int>(std::ceil(source.width / factor)));
  const int th = std::max(1, static_cast<int>(std::ceil(source.height / factor)));
  downsample = static_cast<double>(width()) / tw;
  std::vector<double> sum(static_cast<size_t>(tw) * th * 3, 0.0), count(static_cast<size_t>(tw) * th, 0.0);
  const int64_t band = std::max<int64_t>(1, std::min<int64_t>(source.height, kMaxRegionPixels / 4 / source.width));
  for (int64_t y0 = 0; y0 < source.height; y0 += band) {
    const int64_t rows = std::min(band, source.height - y0);
    const RgbImage strip = read(0, static_cast<int64_t>(std::llround(y0 * source.downsample)), level, source.width, rows);
    for (int64_t r = 0; r < rows; ++r) {
      const int ty = std::min(th - 1, static_cast<int>((y0 + r) / factor));
      const uint8_t* p = strip.pixels.data() + static_cast<size_t>(r) * source.width * 3;
      for (int64_t x = 0; x < source.width; ++x, p += 3) {
        const size_t t = static_cast<size_t>(ty) * tw + std::min(tw - 1, static_cast<int>(x / factor));
        for (int c = 0; c < 3; ++c) sum[t * 3 + c] += p[c];
        count[t] += 1;
      }
    }
  }
  RgbImage thumb(tw, th);
  for (size_t t = 0; t < count.size(); ++t)
    for (int c = 0; c < 3; ++c)
      thumb.pixels[t * 3 + c] = static_cast<uint8_t>(count[t] > 0 ? std::lround(sum[t * 3 + c] / count[t]) : 255);
  return thumb;
}

#endif

std::vector<std::string> expand_slide_paths(const std::vector<std::string>& inputs) {
  static const std::set<std::string> beside_slides = {".geojson", ".json", ".csv", ".txt", ".md", ".xml", ".ndpa"};
  std::vector<std::string> files;
  for (const auto& input : inputs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(input, ec)) {
      files.push_back(input);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& e : std::filesystem::directory_iterator(input, ec)) {
      const std::string name = e.path().filename().string();
      std::string extension = e.path().extension().string();
      std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
      if (e.is_regular_file(ec) && name[0] != '.' && !beside_slides.count(extension)) found.push_back(e.path().string());
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace histotrain
