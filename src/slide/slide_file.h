// A whole-slide image, read through OpenSlide: every format it reads (Aperio SVS, Hamamatsu NDPI,
// MIRAX, Philips, Leica, Ventana, generic tiled TIFF), its pyramid levels, its microns per pixel,
// and regions of any level. Reads are regions, never a whole level: a level may claim 10^6 x 10^6
// pixels. OpenSlide's handle is safe for concurrent reads (all its functions but close are
// thread-safe), so one object serves every reading thread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/image.h"

namespace histotrain {

struct SlideLevel {
  int64_t width = 0, height = 0;
  double downsample = 1;  // level-0 pixels per pixel of this level
};

// The largest region read at once, in pixels: a tile, or a band of a thumbnail.
constexpr int64_t kMaxRegionPixels = int64_t{64} << 20;

class SlideFile {
 public:
  // Opens `path`; throws Error naming the file when OpenSlide cannot read it (damaged,
  // truncated, an unknown format). `mpp` > 0 replaces the slide's own microns per pixel (generic
  // TIFFs often have none).
  explicit SlideFile(const std::string& path, double mpp = 0);
  ~SlideFile();
  SlideFile(const SlideFile&) = delete;
  SlideFile& operator=(const SlideFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SlideLevel>& levels() const { return levels_; }
  int64_t width() const { return levels_.front().width; }
  int64_t height() const { return levels_.front().height; }
  // Microns per level-0 pixel; 0 when neither the slide nor --mpp says.
  double mpp() const { return mpp_; }
  std::string mpp_source() const { return mpp_source_; }  // "the slide's openslide.mpp-x", "--mpp", ...
  std::string vendor() const { return vendor_; }

  // The level whose downsample is the largest not above `downsample` (OpenSlide's choice).
  int best_level(double downsample) const;

  // RGB of the region whose top-left is (x, y) in level-0 pixels, `w` x `h` pixels of `level`;
  // transparent pixels (outside the scanned area) are white. Throws Error when OpenSlide fails
  // or the region is larger than kMaxRegionPixels.
  RgbImage read(int64_t x, int64_t y, int level, int64_t w, int64_t h) const;

  // The whole slide at about `max_side` pixels on its longer side, averaged down from the level
  // nearest it, read in bands (memory stays within a band's and the result's). Its downsample
  // from level 0 goes to `downsample`. Throws Error when even the smallest level would take more
  // than a few hundred million pixels to read.
  RgbImage thumbnail(int max_side, double& downsample) const;

 private:
  void* osr_ = nullptr;  // openslide_t
  std::string path_, vendor_, mpp_source_;
  std::vector<SlideLevel> levels_;
  double mpp_ = 0;
};

// Slide files as given; a folder stands for its files (sorted), but for hidden ones and the
// annotations, tables and notes that live beside slides (.geojson, .json, .csv, .txt, .md, .xml,
// .ndpa). Whether each is a slide is OpenSlide's to say when it is opened.
std::vector<std::string> expand_slide_paths(const std::vector<std::string>& inputs);

// Whether this build reads slides (OpenSlide found when configured).
bool slides_supported();

}  // namespace histotrain
