#include "data/jpeg.h"

#include <turbojpeg.h>

#include <cstring>
#include <memory>

#include "data/decode.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

// One decompressor and one compressor per thread: creating them costs more than a small decode.
struct TjHandle {
  tjhandle handle;
  explicit TjHandle(tjhandle h) : handle(h) {}
  ~TjHandle() {
    if (handle) tjDestroy(handle);
  }
};

TjHandle& thread_decompressor_slot() {
  thread_local TjHandle h(tjInitDecompress());
  return h;
}

tjhandle thread_decompressor() { return thread_decompressor_slot().handle; }

// After a failed decode libjpeg-turbo can leave the handle in a state where the next, valid JPEG
// fails too ("Invalid argument"): a fresh handle keeps one bad file from costing a good one.
void replace_thread_decompressor() {
  TjHandle& slot = thread_decompressor_slot();
  if (slot.handle) tjDestroy(slot.handle);
  slot.handle = tjInitDecompress();
}

tjhandle thread_compressor() {
  thread_local TjHandle h(tjInitCompress());
  return h.handle;
}

// The scaled size libjpeg-turbo will produce for a numerator/denominator factor.
int scaled(int dimension, const tjscalingfactor& f) { return TJSCALED(dimension, f); }

// The smallest DCT scale whose output is still >= min_side on both sides (1/1 when none is).
tjscalingfactor choose_scale(int width, int height, int min_side) {
  tjscalingfactor best{1, 1};
  if (min_side <= 0 || width < 2 * min_side || height < 2 * min_side) return best;
  int count = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&count);
  for (int i = 0; i < count; ++i) {
    const auto& f = factors[i];
    if (f.num >= f.denom) continue;  // only downscaling
    if (scaled(width, f) >= min_side && scaled(height, f) >= min_side &&
        scaled(width, f) < scaled(width, best))
      best = f;
  }
  return best;
}

// Adobe-style CMYK as libjpeg returns it (inverted: 255 = no ink) to RGB.
void cmyk_to_rgb(const std::vector<uint8_t>& cmyk, RgbImage& out) {
  const size_t n = static_cast<size_t>(out.width) * out.height;
  for (size_t i = 0; i < n; ++i) {
    const int k = cmyk[4 * i + 3];
    for (int c = 0; c < 3; ++c) out.pixels[3 * i + c] = static_cast<uint8_t>(cmyk[4 * i + c] * k / 255);
  }
}

// Start-of-scan markers in the stream. Inside entropy-coded data a 0xFF byte is always followed
// by 0x00 (stuffing) or a restart marker, so FF DA is a scan and nothing else.
int64_t scans_in(const uint8_t* data, size_t size) {
  int64_t scans = 0;
  for (size_t i = 0; i + 1 < size; ++i) scans += data[i] == 0xFF && data[i + 1] == 0xDA;
  return scans;
}

// A progressive JPEG is decoded once per scan, each pass over all its coefficients: a 300 KB
// file of many scans over many pixels took 20 s. Refused before decoding: more scans than any
// encoder writes (libjpeg's progression has 10, a few more with other scripts), or more
// scan-pixels than a large tile's worth (the limit's pixels times 10 scans).
constexpr int64_t kMaxScans = 64;
std::string scan_limit_error(const uint8_t* data, size_t size, uint64_t width, uint64_t height) {
  const int64_t scans = scans_in(data, size);
  const uint64_t budget = max_image_pixels() * 10;
  if (scans <= 1) return "";
  if (scans > kMaxScans || width * height * static_cast<uint64_t>(scans) > budget)
    return "a progressive JPEG of " + std::to_string(scans) + " scans over " + std::to_string(width) + " x " +
           std::to_string(height) + " pixels (at most " + std::to_string(kMaxScans) + " scans, and " +
           std::to_string(budget) + " pixels in all scans: a decode-time bomb, or not a tile)";
  return "";
}

bool is_fatal(tjhandle h) {
  // Warnings (e.g. extraneous bytes) are fine, but a premature end means missing rows: libjpeg
  // says "Premature end of JPEG file" or "Corrupt JPEG data: premature end of data segment".
  if (tjGetErrorCode(h) != TJERR_WARNING) return true;
  return ::strcasestr(tjGetErrorStr2(h), "premature end") != nullptr;
}

}  // namespace

DecodeResult decode_jpeg(const uint8_t* data, size_t size, int min_side) {
  DecodeResult result;
  tjhandle h = thread_decompressor();
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(h, data, static_cast<unsigned long>(size), &width, &height, &subsamp, &colorspace) != 0) {
    result.error = std::string("not a readable JPEG: ") + tjGetErrorStr2(h);
    replace_thread_decompressor();
    return result;
  }
  result.error = pixel_limit_error(static_cast<uint64_t>(width), static_cast<uint64_t>(height));
  if (result.error.empty()) result.error = scan_limit_error(data, size, static_cast<uint64_t>(width), static_cast<uint64_t>(height));
  if (!result.error.empty()) return result;
  result.source_width = width, result.source_height = height;
  const tjscalingfactor f = choose_scale(width, height, min_side);
  RgbImage image(scaled(width, f), scaled(height, f));
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  std::vector<uint8_t> cmyk_pixels;
  if (cmyk) cmyk_pixels.resize(static_cast<size_t>(image.width) * image.height * 4);
  uint8_t* target = cmyk ? cmyk_pixels.data() : image.pixels.data();
  const int rc = tjDecompress2(h, data, static_cast<unsigned long>(size), target, image.width, 0, image.height,
                               cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_FASTDCT | TJFLAG_LIMITSCANS);
  if (rc != 0 && is_fatal(h)) {
    result.error = std::string("corrupt JPEG: ") + tjGetErrorStr2(h);
    replace_thread_decompressor();
    return result;
  }
  if (cmyk) cmyk_to_rgb(cmyk_pixels, image);
  result.ok = true;
  result.image = std::move(image);
  return result;
}

DecodeResult decode_jpeg_file(const std::string& path, int min_side) {
  std::vector<uint8_t> bytes;
  if (!read_file_bytes(path, bytes, max_image_pixels() * 8 + (uint64_t{1} << 20))) {
    DecodeResult result;
    result.error = "cannot read file";
    return result;
  }
  return decode_jpeg(bytes.data(), bytes.size(), min_side);
}

std::vector<uint8_t> encode_jpeg(const RgbImage& image, int quality, JpegSubsampling subsampling) {
  tjhandle h = thread_compressor();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  const int samp = subsampling == JpegSubsampling::s444 ? TJSAMP_444
                   : subsampling == JpegSubsampling::gray ? TJSAMP_GRAY : TJSAMP_420;
  if (tjCompress2(h, image.pixels.data(), image.width, 0, image.height, TJPF_RGB, &buffer, &size, samp, quality,
                  TJFLAG_ACCURATEDCT) != 0) {
    if (buffer) tjFree(buffer);
    throw Error(std::string("JPEG encoding failed: ") + tjGetErrorStr2(h));
  }
  std::vector<uint8_t> out(buffer, buffer + size);
  tjFree(buffer);
  return out;
}

}  // namespace histotrain
