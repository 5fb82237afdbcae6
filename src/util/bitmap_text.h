// Short labels drawn into 8-bit RGB pictures with a built-in 5 x 7 pixel font (digits, letters,
// a few signs; capitals drawn as small letters, anything else as a box), so that a picture can say
// what it shows without a font library.
#pragma once
#include <cstdint>
#include <string>

namespace histotrain {

// The width and height in pixels that draw_label takes for `text` at `scale`.
int label_width(const std::string& text, int scale);
int label_height(int scale);

// `text` in white on a dark box whose top-left corner is (x, y), clipped to the picture.
void draw_label(uint8_t* rgb, int width, int height, int x, int y, const std::string& text, int scale);

}  // namespace histotrain
