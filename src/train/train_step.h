// One optimizer step of a run: the forward and backward passes of its batch (through the
// pipeline's stages, or as --accumulate slices whose gradients add up), the gradients averaged
// over ranks, and the update; eager, or replayed as a CUDA graph. Internal to the trainer.
#pragma once
#include <torch/torch.h>

#include "data/batches.h"
#include "train/run.h"

namespace histotrain {

// The epoch's running sums. They stay on the device and are read only for the progress line and
// at the end. The loss sum is float64 and, on the main rank, goes on from the sum saved before a
// resume: a resumed run then adds the same numbers in the same order as a run never interrupted,
// and reports the same epoch loss to the last bit (two partial sums added at the end would differ
// in it).
struct EpochSums {
  torch::Tensor loss;     // the steps' mean losses
  torch::Tensor correct;  // correctly classified training images
  double carried = 0;     // the part of `loss` from before a resume
  EpochProgress before;   // the epoch's steps before a resume, less what `loss` carries
};

// One optimizer step on `batch` (at the side progressive resizing gives this step) at rate `lr`;
// adds its mean loss and correct count to `sums`. False when fp16 loss scaling skipped it.
bool take_step(Run& run, RunProgress& p, const Batch& full_size_batch, double lr, EpochSums& sums);

}  // namespace histotrain
