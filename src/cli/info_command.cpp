// histotrain info: what this build and this machine are, for bug reports and benchmark records.
#include <cstdio>

#include "cli/commands.h"
#include "train/system_info.h"
#include "util/json_text.h"

namespace histotrain {

Command add_info_command(CLI::App& root) {
  auto json = std::make_shared<bool>(false);
  CLI::App* app = root.add_subcommand(
      "info", "What this build and machine are: LibTorch (CUDA, cuDNN, NCCL), backends, allocator, CPU, GPUs");
  app->add_flag("--json", *json, "One JSON object, for tools");
  return {app, [json] {
            const nlohmann::json info = system_info();
            std::fputs(*json ? (json_text(info, 2) + "\n").c_str() : system_info_text(info).c_str(), stdout);
            return 0;
          }};
}

}  // namespace histotrain
