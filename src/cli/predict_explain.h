// predict --explain DIR: for each tile, a picture of where the model found its evidence
// (Grad-CAM, core/grad_cam.h) with the class and its probability in the corner.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/trained_model.h"

namespace histotrain {

struct ExplainOptions {
  std::string dir;           // where the pictures go: DIR/<file stem>.gradcam.png
  std::string target_class;  // "": each tile's predicted class
  int batch_size = 64;
  double temperature = 1;    // of the probability shown (the one predict reports)
};

// The index of --explain-class `name` among the model's classes; -1 for "" (each tile's predicted
// class). Throws UsageError for a name that is not a class.
int64_t explained_class(const TrainedModel& trained, const std::string& name);

// Explains every readable file of `paths` in batches; returns the pictures written.
int64_t write_explanations(TrainedModel& trained, const std::vector<std::string>& paths, const ExplainOptions& options,
                           torch::Device device);

}  // namespace histotrain
