// Progressive resizing (--progressive-from PX): the first steps see smaller images, which cost a
// fraction of a full-size step, and the side grows to --image-size, the size the model is
// validated at, over the first --progressive-until share of training. Coarse features learnt
// cheaply early; the last share trains BatchNorm's statistics and the fine detail at full size.
//
// The tiles stay cached once, at --image-size: a smaller side is the batch averaged down
// (adaptive average pooling: every source pixel counts, no aliasing), inside the step and its
// clock. The side grows in steps of kSideStep pixels, so a run meets few distinct shapes (each new
// shape costs the kernels' set-up and the convolution tuning once).
#pragma once
#include <torch/torch.h>

namespace histotrain {

struct ResolutionSchedule {
  int from = 0;          // first side, px; 0: off (always `to`)
  int to = 0;            // the final side: --image-size
  double until = 0.75;   // share of training after which the side is `to`
  static constexpr int kSideStep = 16;

  bool on() const { return from > 0 && from < to; }
  // The side at `progress` (the share of training done: of the time budget, or of the steps).
  int side_at(double progress) const;
};

// `images` [B, C, H, W] averaged down to side x side (unchanged when already that size), in `format`.
torch::Tensor resized_batch(const torch::Tensor& images, int side, torch::MemoryFormat format);

}  // namespace histotrain
