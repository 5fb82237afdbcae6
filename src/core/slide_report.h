// What `predict --slide` writes for each slide, in its own folder:
//   tiles.csv            x, y, width, height (level-0 pixels), tissue fraction, predicted class, one
//                        probability column per class
//   heatmap_<class>.png  the class's probability over the thumbnail, with its colour scale
//   overlay.png          the predicted class of every tile over the thumbnail, with a legend
//   predictions.geojson  one polygon per tile for QuPath (its class, and its probabilities as
//                        measurements)
//   evidence_<class>.png the tiles called the class most confidently, with Grad-CAM (core/slide_evidence.h)
//   summary.json         tiles, tissue area in mm², class fractions, mean probabilities, the model,
//                        the timings; written last: a folder with it is a finished slide
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/slide_inference.h"
#include "slide/slide_file.h"

namespace histotrain {

// Writes every file but summary.json and returns the summary (the caller adds to it, then writes it).
nlohmann::json write_slide_outputs(const SlideFile& slide, const SlidePrediction& p, const TrainedModel& trained,
                                   const std::filesystem::path& folder);

}  // namespace histotrain
