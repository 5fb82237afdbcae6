#include "data/png_encode.h"

#include <png.h>

#include <csetjmp>

#include "util/errors.h"

namespace histotrain {

namespace {

void append(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), length);
}
void flush_nothing(png_structp) {}

std::string encode(const uint8_t* pixels, int width, int height, int channels, int compression) {
  if (width <= 0 || height <= 0) throw Error("encode_png: an empty image");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    throw Error("libpng could not start");
  }
  std::string out;
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int y = 0; y < height; ++y)
    rows[y] = const_cast<png_bytep>(pixels + static_cast<size_t>(y) * width * channels);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error("PNG encoding failed");
  }
  png_set_write_fn(png, &out, append, flush_nothing);
  png_set_compression_level(png, compression);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

}  // namespace

std::string encode_png(const RgbImage& image, int compression) {
  return encode(image.pixels.data(), image.width, image.height, 3, compression);
}

std::string encode_png_rgba(const std::vector<uint8_t>& rgba, int width, int height, int compression) {
  if (rgba.size() != static_cast<size_t>(width) * height * 4) throw Error("encode_png_rgba: pixels do not match the size");
  return encode(rgba.data(), width, height, 4, compression);
}

}  // namespace histotrain
