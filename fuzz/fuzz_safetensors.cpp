// libFuzzer target: any bytes as a weights file (model.safetensors, train_state.safetensors),
// parsed and then loaded into a small module. The reader must refuse every file whose header
// lies (sizes, dtypes, shapes, offsets) without a crash, an allocation beyond the input's size or
// a read outside it (built with ASan and UBSan). Run with bench/fuzz.sh; crashes it finds become
// regression tests in tests/test_safetensors.cpp.
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "model/safetensors.h"
#include "util/errors.h"

namespace {

// Two tensors of the names and shapes a seed file holds, so that inputs reach the name, dtype and
// shape checks of load_module_tensors.
struct Small : torch::nn::Module {
  Small() {
    weight = register_parameter("weight", torch::zeros({3, 2}));
    steps = register_buffer("steps", torch::zeros({}, torch::kInt64));
  }
  torch::Tensor weight, steps;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Small module;
  try {
    const histotrain::Safetensors file =
        histotrain::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    histotrain::load_module_tensors(module, file, "fuzz");
  } catch (const histotrain::Error&) {
    // refused: what must happen to almost every input
  }
  return 0;
}
