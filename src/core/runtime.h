// Process-wide execution settings shared by train, eval and predict.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace histotrain {

// A device as a user names it: "cpu", "cuda" (a rank's own GPU) or "cuda:N". Parsed once where
// the text enters (util/text_form.h); open_device() makes the device, once CUDA is checked.
struct DeviceName {
  bool cuda = false;
  int index = -1;  // cuda:N; -1: none given

  static std::optional<DeviceName> parse(std::string_view text);
  std::string text() const;  // what parse reads back: "cuda:1"
  static const char* example() { return "cuda:1"; }
};

// --devices: one device per pipeline stage inside one process, "cuda:0,cuda:1" ("cpu,cpu" to
// test); empty: the stages are ranks (or there are none).
struct DeviceList {
  std::vector<DeviceName> names;

  static std::optional<DeviceList> parse(std::string_view text);  // "" is the empty list
  std::string text() const;
  static const char* example() { return "cpu,cpu"; }
  bool empty() const { return names.empty(); }
};

// The device `name` names; throws Error when CUDA is asked for but not available. For CUDA it
// also turns on cuDNN's benchmark mode.
torch::Device open_device(const DeviceName& name);
// The same from text; a UsageError for a text that names no device.
torch::Device parse_device(const std::string& name);

// Sets LibTorch's intra-op threads. 0: $OMP_NUM_THREADS when set (torchrun and `histotrain
// launch` set it), else this node's cores shared among `ranks_on_node` processes. LibTorch would
// otherwise start with 1 here.
void set_threads(int threads, int ranks_on_node = 1);

// --deterministic: LibTorch refuses kernels that are not run-to-run deterministic; on CUDA cuDNN
// stops autotuning and picks deterministic algorithms, and cuBLAS gets a fixed workspace.
void use_deterministic_algorithms();

}  // namespace histotrain
