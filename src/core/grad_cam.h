// Grad-CAM (Selvaraju et al., 2017): where in a tile the model found its evidence for a class.
// The last residual stage's activations, weighted per channel by the mean gradient of the class's
// logit with respect to them, summed over channels and passed through ReLU: one coarse map per
// tile (the stage's stride is 32: a 224-px tile gives 7 x 7), for a whole batch in one forward
// and one backward of the head.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/image.h"
#include "model/resnet.h"

namespace histotrain {

struct GradCamBatch {
  torch::Tensor maps;           // float [N, h, w] on the CPU, each divided by its maximum (all 0: no evidence)
  torch::Tensor classes;        // int64 [N]: the class each map explains
  torch::Tensor probabilities;  // float [N, classes] on the CPU
};

// `inputs`: normalised model inputs [N, 3, S, S] on the model's device. `target`: a class index
// for every tile, or -1 for each tile's predicted class. The model stays in eval mode.
GradCamBatch grad_cam(ResNet& model, const torch::Tensor& inputs, int64_t target = -1);

// `tile` with `map` laid over it (bilinear to the tile's size; green, transparent where the map
// is low) and `label` in the top-left corner.
RgbImage grad_cam_picture(const RgbImage& tile, const torch::Tensor& map, const std::string& label);

}  // namespace histotrain
