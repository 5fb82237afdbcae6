// libFuzzer target: any bytes as a --init weights file written by Python's torch.save (a zip of
// stored records with a pickle inside). The zip reader and the restricted unpickler must refuse
// every file that lies (offsets, sizes, opcodes, callables, views past their storage, cycles,
// nesting) without a crash, an allocation beyond a bound or a read outside the input (built with
// ASan and UBSan). Run with bench/fuzz.sh; crashes it finds become regression tests in
// tests/test_pytorch_weights.cpp.
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "model/pytorch_weights.h"
#include "util/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    histotrain::parse_pytorch_state_dict(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const histotrain::Error&) {
    // refused: what must happen to almost every input
  }
  return 0;
}
