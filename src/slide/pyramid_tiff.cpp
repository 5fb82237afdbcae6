#include "slide/pyramid_tiff.h"

#include <tiffio.h>

#include <algorithm>
#include <cstring>

#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

RgbImage half_of(const RgbImage& image) {
  RgbImage half(std::max(1, image.width / 2), std::max(1, image.height / 2));
  for (int y = 0; y < half.height; ++y)
    for (int x = 0; x < half.width; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            const int sx = std::min(image.width - 1, 2 * x + dx), sy = std::min(image.height - 1, 2 * y + dy);
            sum += image.pixels[(static_cast<size_t>(sy) * image.width + sx) * 3 + c];
          }
        half.pixels[(static_cast<size_t>(y) * half.width + x) * 3 + c] = static_cast<uint8_t>((sum + 2) / 4);
      }
  return half;
}

void write_level(TIFF* tif, const RgbImage& image, double mpp, int tile, bool reduced) {
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(image.width));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(image.height));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  TIFFSetField(tif, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(tile));
  TIFFSetField(tif, TIFFTAG_TILELENGTH, static_cast<uint32_t>(tile));
  TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
  TIFFSetField(tif, TIFFTAG_XRESOLUTION, static_cast<float>(10000.0 / mpp));
  TIFFSetField(tif, TIFFTAG_YRESOLUTION, static_cast<float>(10000.0 / mpp));
  if (reduced) TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
  std::vector<uint8_t> buffer(static_cast<size_t>(tile) * tile * 3);
  for (int ty = 0; ty < image.height; ty += tile)
    for (int tx = 0; tx < image.width; tx += tile) {
      std::fill(buffer.begin(), buffer.end(), 255);  // past the edge: white, as glass
      for (int y = 0; y < tile && ty + y < image.height; ++y) {
        const int n = std::min(tile, image.width - tx);
        std::memcpy(buffer.data() + static_cast<size_t>(y) * tile * 3,
                    image.pixels.data() + (static_cast<size_t>(ty + y) * image.width + tx) * 3, static_cast<size_t>(n) * 3);
      }
      if (TIFFWriteTile(tif, buffer.data(), static_cast<uint32_t>(tx), static_cast<uint32_t>(ty), 0, 0) < 0)
        throw Error("cannot write a TIFF tile");
    }
  if (!TIFFWriteDirectory(tif)) throw Error("cannot write a TIFF directory");
}

}  // namespace

std::vector<RgbImage> pyramid_levels(const RgbImage& level0, int smallest_side) {
  std::vector<RgbImage> levels{level0};
  while (std::max(levels.back().width, levels.back().height) > smallest_side) levels.push_back(half_of(levels.back()));
  return levels;
}

void write_pyramid_tiff(const std::vector<RgbImage>& levels, const std::string& path, double mpp, int tile) {
  if (levels.empty() || mpp <= 0 || tile < 16 || tile % 16 != 0) throw Error("write_pyramid_tiff: bad arguments");
  replace_file_atomically(path, [&](const fs::path& tmp) {
    TIFF* tif = TIFFOpen(tmp.c_str(), "w8");  // BigTIFF: a level-0 image past 4 GB is still one file
    if (!tif) throw Error("cannot create " + tmp.string());
    try {
      for (size_t l = 0; l < levels.size(); ++l)
        write_level(tif, levels[l], mpp * levels[0].width / levels[l].width, tile, l > 0);
    } catch (...) {
      TIFFClose(tif);
      throw;
    }
    TIFFClose(tif);
  });
}

}  // namespace histotrain
