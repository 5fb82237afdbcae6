// TIFF from memory through libtiff's RGBA reader, which turns every photometric, bit depth,
// layout (strips or tiles) and compression libtiff knows into 8-bit RGBA. Only the first page is
// read; a pyramid is refused (a whole-slide image is not a tile, and its first page is the full
// resolution).
#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "data/image_decoders.h"

namespace histotrain {

namespace {

struct TiffSource {
  const uint8_t* data;
  size_t size;
  toff_t offset;
  std::string error;  // libtiff's first error message
};

TiffSource& source_of(thandle_t handle) { return *static_cast<TiffSource*>(handle); }

tmsize_t read_bytes(thandle_t handle, void* out, tmsize_t length) {
  TiffSource& s = source_of(handle);
  if (length < 0 || s.offset >= s.size) return 0;
  const size_t n = std::min<size_t>(static_cast<size_t>(length), s.size - s.offset);
  std::memcpy(out, s.data + s.offset, n);
  s.offset += n;
  return static_cast<tmsize_t>(n);
}

tmsize_t write_nothing(thandle_t, void*, tmsize_t) { return 0; }

toff_t seek(thandle_t handle, toff_t offset, int whence) {
  TiffSource& s = source_of(handle);
  const toff_t base = whence == SEEK_CUR ? s.offset : whence == SEEK_END ? s.size : 0;
  s.offset = base + offset;  // past the end is allowed; reads there return nothing
  return s.offset;
}

int close_nothing(thandle_t) { return 0; }
toff_t size_of(thandle_t handle) { return source_of(handle).size; }
// The bytes are already in memory: libtiff reads them as a mapping (as it maps a file, read-only;
// it copies wherever it must change bytes). Without a mapping libtiff 4.5 reads each uncompressed
// tile into a buffer rounded up to 1 KiB and then refuses the tile for that buffer's size
// ("Invalid tile byte count ... Expected 768, got 1024"): 16 x 16 RGB tiles never decoded.
int map_memory(thandle_t handle, void** base, toff_t* size) {
  TiffSource& s = source_of(handle);
  *base = const_cast<uint8_t*>(s.data);
  *size = s.size;
  return 1;
}
void unmap_nothing(thandle_t, void*, toff_t) {}

int keep_first_error(TIFF*, void* user_data, const char* module, const char* format, va_list args) {
  auto* s = static_cast<TiffSource*>(user_data);
  if (s->error.empty()) {
    char message[256];
    std::vsnprintf(message, sizeof message, format, args);
    s->error = std::string(module ? module : "libtiff") + ": " + message;
  }
  return 1;  // handled: libtiff does not print it
}

int ignore_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

TIFF* open_tiff(TiffSource& source) {
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(options, keep_first_error, &source);
  TIFFOpenOptionsSetWarningHandlerExtR(options, ignore_warning, nullptr);
  // No single allocation larger than the largest permitted image could need (16-bit RGBA).
  TIFFOpenOptionsSetMaxSingleMemAlloc(options, static_cast<tmsize_t>(max_image_pixels() * 8 + (1 << 20)));
  TIFF* tif = TIFFClientOpenExt("memory", "r", &source, read_bytes, write_nothing, seek, close_nothing, size_of,
                                map_memory, unmap_nothing, options);
  TIFFOpenOptionsFree(options);
  return tif;
}

// A pyramid keeps reduced resolutions as SubIFDs of the first page or as the pages after it.
bool is_pyramid(TIFF* tif, uint32_t width, uint32_t height) {
  uint16_t sub_count = 0;
  void* sub_offsets = nullptr;
  if (TIFFGetField(tif, TIFFTAG_SUBIFD, &sub_count, &sub_offsets) && sub_count > 0) return true;
  if (!TIFFReadDirectory(tif)) return false;
  uint32_t next_width = 0, next_height = 0, subfile_type = 0;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &next_width);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &next_height);
  TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &subfile_type);
  const bool reduced = (subfile_type & FILETYPE_REDUCEDIMAGE) || (next_width < width && next_height < height);
  TIFFSetDirectory(tif, 0);
  return reduced;
}

DecodeResult read_first_page(TIFF* tif, TiffSource& source) {
  DecodeResult result;
  uint32_t width = 0, height = 0;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
  result.error = pixel_limit_error(width, height);
  if (!result.error.empty()) return result;
  if (is_pyramid(tif, width, height)) {
    result.error = "a pyramid TIFF (reduced-resolution pages: a whole-slide image), not a tile; cut tiles from it "
                   "with `histotrain tile`, or predict it with `histotrain predict --slide`";
    return result;
  }
  char why[1024] = "";
  if (!TIFFRGBAImageOK(tif, why)) {
    result.error = std::string("a TIFF libtiff cannot turn into RGB: ") + why;
    return result;
  }
  std::vector<uint32_t> raster(static_cast<size_t>(width) * height);
  source.error.clear();  // complaints about the header that libtiff got past are not damage
  if (!TIFFReadRGBAImageOriented(tif, width, height, raster.data(), ORIENTATION_TOPLEFT, 1) ||
      !source.error.empty()) {
    result.error = "damaged TIFF: " + (source.error.empty() ? std::string("unreadable pixels") : source.error);
    return result;
  }
  // libtiff's RGBA is premultiplied (associated) alpha: on white, c + (255 - a).
  result.image = RgbImage(static_cast<int>(width), static_cast<int>(height));
  uint8_t* out = result.image.pixels.data();
  for (const uint32_t pixel : raster) {
    const unsigned background = 255u - TIFFGetA(pixel);
    for (const unsigned value : {TIFFGetR(pixel), TIFFGetG(pixel), TIFFGetB(pixel)})
      *out++ = static_cast<uint8_t>(std::min(255u, value + background));
  }
  result.ok = true;
  return result;
}

}  // namespace

DecodeResult decode_tiff(const uint8_t* data, size_t size) {
  TiffSource source{data, size, 0, {}};
  TIFF* tif = open_tiff(source);
  if (!tif) {
    DecodeResult result;
    result.error = "damaged TIFF: " + (source.error.empty() ? std::string("unreadable header") : source.error);
    return result;
  }
  DecodeResult result = read_first_page(tif, source);
  TIFFClose(tif);
  return result;
}

}  // namespace histotrain
