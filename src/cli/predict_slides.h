// predict --slide: whole slides through a trained model (core/slide_inference.h), each into its
// folder (core/slide_report.h), the slides shared among the ranks of a job, and an index.
#pragma once
#include <string>
#include <vector>

#include "core/slide_evidence.h"
#include "core/slide_inference.h"

namespace histotrain {

struct SlidePredictOptions {
  std::string checkpoint, out, device = "cpu", amp, calibration;
  std::vector<std::string> slides;  // files, or folders of them
  SlideInferenceOptions inference;
  int evidence_tiles = 8;      // per class, in evidence_<class>.png (core/slide_evidence.h)
  std::string evidence_class;  // "": every class
  double slide_mpp = 0;
  int threads = 0;
  bool trust_checkpoint = false;
};

int predict_slides(const SlidePredictOptions& options);

}  // namespace histotrain
