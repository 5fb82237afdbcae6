// What the model took for each class on a slide, and where in those tiles it looked: for each
// class, the tiles it called that class most confidently, read again at a side a person can read
// and drawn side by side, each with the class's Grad-CAM over it (core/grad_cam.h) and its
// probability and level-0 position in the corner. One picture per class, evidence_<class>.png in
// the slide's folder. Only those tiles pass through Grad-CAM (a forward and a backward of the last
// stage), so a slide costs a few batches more, whatever its size.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/slide_inference.h"
#include "core/trained_model.h"
#include "slide/slide_file.h"

namespace histotrain {

// The indices of up to `count` tiles predicted as `class_index`, highest probability of it first
// (the earlier tile first on a tie), spread over the slide: a tile that touches one already chosen
// (side by side or corner to corner) is taken only when there are too few others, so the picture
// shows several places rather than one region's neighbouring tiles.
std::vector<size_t> most_confident_tiles(const SlidePrediction& p, int64_t class_index, int count);

// `cells` (each `side` x `side`) in rows of `columns`, below `title`, on white.
RgbImage gallery(const std::vector<RgbImage>& cells, int side, int columns, const std::string& title);

struct EvidenceOptions {
  int tiles = 8;              // per class (0: no evidence pictures)
  int64_t only_class = -1;    // one class's picture only (-1: every class some tile was called)
};

// Writes evidence_<class>.png for each class with tiles into `folder`; returns summary.json's
// "evidence": {class: {"picture": file, "tiles": [{"x", "y", "probability"}...]}}.
nlohmann::json write_slide_evidence(TrainedModel& trained, const SlideFile& slide, const SlidePrediction& p,
                                    const EvidenceOptions& options, const torch::Device& device,
                                    const std::filesystem::path& folder);

}  // namespace histotrain
