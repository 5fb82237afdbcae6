// Which image format a file holds, told by its first bytes (its "magic"), not by its name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace histotrain {

enum class ImageFormat { unknown, jpeg, png, tiff, bmp, webp };

// The number of leading bytes detect_image_format() needs at most.
constexpr size_t kImageMagicBytes = 12;

ImageFormat detect_image_format(const uint8_t* data, size_t size);
// Reads the first bytes of a file; unknown when it cannot be read.
ImageFormat detect_image_file_format(const std::string& path);

const char* image_format_name(ImageFormat format);

// True for the extensions of the formats above (.jpg .jpeg .png .tif .tiff .bmp .webp, any case):
// a file so named whose content is no image is counted as damaged, not silently ignored.
bool has_image_extension(const std::string& path);

}  // namespace histotrain
