#include "core/grad_cam.h"

#include <algorithm>

#include "util/bitmap_text.h"

namespace histotrain {

GradCamBatch grad_cam(ResNet& model, const torch::Tensor& inputs, int64_t target) {
  const int64_t head = model->unit_count() - 1;
  torch::Tensor features;
  {
    torch::NoGradGuard no_grad;  // nothing below the last stage needs a gradient
    features = model->forward_units(inputs, 0, head);
  }
  torch::AutoGradMode with_grad(true);
  features = features.detach().to(torch::kFloat32).requires_grad_(true);
  const torch::Tensor logits = model->forward_units(features, head, head + 1).to(torch::kFloat32);
  GradCamBatch out;
  out.classes = target >= 0 ? torch::full({inputs.size(0)}, target, torch::TensorOptions().dtype(torch::kLong).device(logits.device()))
                            : logits.argmax(1);
  const torch::Tensor score = logits.gather(1, out.classes.view({-1, 1})).sum();
  const torch::Tensor gradient = torch::autograd::grad({score}, {features})[0];
  torch::NoGradGuard no_grad;
  const torch::Tensor weights = gradient.mean({2, 3}, /*keepdim=*/true);
  torch::Tensor maps = torch::relu((weights * features.detach()).sum(1));
  const torch::Tensor peak = std::get<0>(maps.flatten(1).max(1)).clamp_min(1e-12).view({-1, 1, 1});
  out.maps = (maps / peak).cpu();
  out.classes = out.classes.cpu();
  out.probabilities = torch::softmax(logits.detach(), 1).cpu();
  return out;
}

RgbImage grad_cam_picture(const RgbImage& tile, const torch::Tensor& map, const std::string& label) {
  RgbImage picture = tile;
  const torch::Tensor up =
      torch::nn::functional::interpolate(map.view({1, 1, map.size(0), map.size(1)}).to(torch::kFloat32),
                                         torch::nn::functional::InterpolateFuncOptions()
                                             .size(std::vector<int64_t>{tile.height, tile.width})
                                             .mode(torch::kBilinear)
                                             .align_corners(false))
          .clamp(0, 1)
          .contiguous();
  const float* m = up.data_ptr<float>();
  for (size_t p = 0; p < static_cast<size_t>(tile.width) * tile.height; ++p) {
    // Green, a colour no H&E stain makes (yellow or red would read as eosin), more opaque where
    // the evidence is stronger: up to 60% at the peak, the tissue still visible below.
    const float v = m[p], alpha = 0.6f * v;
    const float colour[3] = {0, 200, 60};
    for (int c = 0; c < 3; ++c) {
      uint8_t& px = picture.pixels[p * 3 + c];
      px = static_cast<uint8_t>(std::clamp((1 - alpha) * px + alpha * colour[c] + 0.5f, 0.0f, 255.0f));
    }
  }
  const int scale = std::max(1, tile.width / 160);
  draw_label(picture.pixels.data(), picture.width, picture.height, 0, 0, label, scale);
  return picture;
}

}  // namespace histotrain
