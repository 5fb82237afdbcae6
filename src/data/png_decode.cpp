// PNG through libpng's own transformations, so that every colour type and depth arrives as 8-bit
// RGB or RGBA rows. libpng reports errors by longjmp: the functions that call it with setjmp set
// hold no C++ objects, so nothing is skipped when it jumps out of them.
#include <png.h>

#include <csetjmp>
#include <cstring>
#include <vector>

#include "data/image_decoders.h"

namespace histotrain {

namespace {

struct PngSource {
  const uint8_t* data;
  size_t size;
  size_t offset;
  char error[200];  // libpng's message for the last error
};

void read_from_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (length > source->size - source->offset) png_error(png, "the file ends early (truncated)");
  std::memcpy(out, source->data + source->offset, length);
  source->offset += length;
}

void keep_error(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->error, sizeof source->error, "%s", message);
  png_longjmp(png, 1);
}

void ignore_warning(png_structp, png_const_charp) {}

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int channels = 0;  // after the transformations: 3 or 4
};

// Reads the header and asks libpng for 8-bit RGB(A): palettes and low-depth grey expanded,
// tRNS made an alpha channel, 16 bits scaled (not truncated) to 8, grey copied to RGB. No gamma
// correction: the stored values are the pixels.
bool read_header(png_structp png, png_infop info, PngHeader* header) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  header->width = png_get_image_width(png, info);
  header->height = png_get_image_height(png, info);
  png_set_expand(png);
  png_set_scale_16(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  header->channels = png_get_channels(png, info);
  return true;
}

bool read_rows(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  return true;
}

// Header, limit, then rows: the steps that may jump are read_header and read_rows.
DecodeResult read_png(png_structp png, png_infop info, const PngSource& source) {
  DecodeResult result;
  PngHeader header;
  if (!read_header(png, info, &header)) {
    result.error = std::string("damaged PNG: ") + source.error;
    return result;
  }
  result.error = pixel_limit_error(header.width, header.height);
  if (!result.error.empty()) return result;
  if (header.channels != 3 && header.channels != 4) {
    result.error = "PNG with " + std::to_string(header.channels) + " channels after expansion";
    return result;
  }
  const size_t stride = static_cast<size_t>(header.width) * header.channels;
  std::vector<uint8_t> pixels(stride * header.height);
  std::vector<png_bytep> rows(header.height);
  for (png_uint_32 y = 0; y < header.height; ++y) rows[y] = pixels.data() + y * stride;
  if (!read_rows(png, rows.data())) {
    result.error = std::string("damaged PNG: ") + source.error;
    return result;
  }
  result.image = RgbImage(static_cast<int>(header.width), static_cast<int>(header.height));
  rgb_from_interleaved(pixels.data(), header.channels, result.image);
  result.ok = true;
  return result;
}

}  // namespace

DecodeResult decode_png(const uint8_t* data, size_t size) {
  if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
    DecodeResult result;
    result.error = "not a PNG";
    return result;
  }
  // The size, from IHDR's bytes, before libpng allocates anything: libpng sizes its row buffers
  // from the header in png_read_info, before pixel_limit_error could see it (6.5 GB for a header
  // claiming an extreme width). IHDR must be the first chunk.
  if (size < 24 || std::memcmp(data + 12, "IHDR", 4) != 0) {
    DecodeResult result;
    result.error = "damaged PNG: no IHDR chunk first";
    return result;
  }
  const auto big_endian = [&](size_t at) {
    return uint64_t{data[at]} << 24 | uint64_t{data[at + 1]} << 16 | uint64_t{data[at + 2]} << 8 | data[at + 3];
  };
  if (std::string limit = pixel_limit_error(big_endian(16), big_endian(20)); !limit.empty()) {
    DecodeResult result;
    result.error = limit;
    return result;
  }
  PngSource source{data, size, 8, {}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, keep_error, ignore_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  DecodeResult result;
  if (info) {
    png_set_read_fn(png, &source, read_from_memory);
    png_set_sig_bytes(png, 8);
    // Lift libpng's own side limit (1,000,000 px): pixel_limit_error decides. Chunks <= 8 MB.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(png, 8 << 20);
    result = read_png(png, info, source);
  } else {
    result.error = "libpng could not start";
  }
  png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  return result;
}

}  // namespace histotrain
