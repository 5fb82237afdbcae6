// A whole slide through a trained model, tile by tile, without writing a tile file: the tissue of
// its thumbnail (slide/tissue.h), the grid at the wanted resolution, and batches of tiles read and
// resized on worker threads (OpenSlide's handle is shared: its reads are thread-safe) while the
// model classifies the batch before, in the run's precision, layout and normalisation. Memory
// does not grow with the slide: a batch, the next one, the thumbnail, and a few numbers per tile.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "slide/slide_file.h"
#include "slide/tile_grid.h"
#include "slide/tissue.h"

namespace histotrain {

struct SlideInferenceOptions {
  int tile_px = 0;           // tile side at `mpp` before resizing to the model (0: the model's image size)
  double mpp = 0;            // microns per tile pixel (0: the slide's level 0)
  double min_tissue = 0.5;
  int batch_size = 64;
  int workers = 0;           // reading threads (0: all cores)
  bool frozen_model = true;  // on a CPU in fp32, the model frozen and optimised (core/fast_inference.h)
  double temperature = 1;    // divides the logits (the checkpoint's, when it has one)
  bool quiet = false;
};

struct SlidePrediction {
  RgbImage thumbnail;
  TissueMask tissue;
  TileGeometry geometry;
  std::vector<SlideTile> tiles;
  std::vector<float> probabilities;  // tiles x classes
  int64_t classes = 0;
  std::string model_path;            // how the model ran (core/fast_inference.h)
  // The thumbnail and its tissue; reading waited for; the model; the whole slide.
  double tissue_seconds = 0, read_seconds = 0, model_seconds = 0, seconds = 0;

  int64_t predicted(size_t tile) const;
};

SlidePrediction predict_slide(TrainedModel& trained, const SlideFile& slide, const SlideInferenceOptions& options,
                              const torch::Device& device);

}  // namespace histotrain
