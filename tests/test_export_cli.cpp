// histotrain export: ResNet-10/18/34/50 as ONNX (checked by ONNX's checker and run by
// onnxruntime) and TorchScript (run by Python's torch.jit.load), each giving histotrain's own
// logits within 1e-4 on the same pixels, at any batch size.
#include <gtest/gtest.h>

#include "cli_harness.h"
#include "test_util.h"

namespace histotrain {
namespace {

namespace fs = std::filesystem;
using testing::run_histotrain;
using testing::run_program;

TEST(Export, EveryArchitectureRunsInOnnxruntimeAndTorchScriptWithHistotrainsLogits) {
  const std::string onnx_python = testing::test_venv_python("onnx, onnxruntime, PIL, numpy");
  const std::string torch_python = testing::torchvision_python();
  if (onnx_python.empty() || torch_python.empty()) {
    ASSERT_FALSE(testing::packages_required()) << "no build-venv with onnxruntime, or no Debian torch: run.sh makes both";
    GTEST_SKIP() << "no onnxruntime (build-venv) or no python3 with torch";
  }
  testing::ScratchDir dir;
  const std::string check = HISTOTRAIN_SOURCE_DIR "/tests/parity/exported_model_check.py";
  const fs::path tiles = dir / "tiles";
  ASSERT_EQ(run_program(onnx_python, {{check, "tiles", tiles.string(), "32", "5"}}).exit_code, 0);
  for (const std::string arch : {"resnet10", "resnet18", "resnet34", "resnet50"}) {
    SCOPED_TRACE(arch);
    const fs::path run = dir / arch;
    const auto trained = run_histotrain("train --data " + testing::synth_data() + " --arch " + arch +
                                        " --image-size 32 --batch-size 8 --epochs 1 --max-steps 3 --threads 2 " +
                                        "--bootstrap 0 --quiet --out " + run.string());
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
    const auto exported = run_histotrain("export --checkpoint " + run.string() + " --onnx " + (run / "m.onnx").string() +
                                         " --torchscript " + (run / "m.pt").string() + " --probabilities");
    ASSERT_EQ(exported.exit_code, 0) << exported.err;
    const auto predicted = run_histotrain("predict --checkpoint " + run.string() + " --logits --csv " +
                                          (run / "p.csv").string() + " " + tiles.string());
    ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
    const auto onnx = run_program(onnx_python, {{check, "onnx", (run / "m.onnx").string(), (run / "p.csv").string()}});
    EXPECT_EQ(onnx.exit_code, 0) << onnx.out << onnx.err;
    const auto script =
        run_program(torch_python, {{check, "torchscript", (run / "m.pt").string(), (run / "p.csv").string()}});
    EXPECT_EQ(script.exit_code, 0) << script.out << script.err;
  }
}

TEST(Export, NeedsAnOutputAndACheckpoint) {
  EXPECT_EQ(run_histotrain("export --checkpoint /nonexistent").exit_code, 2);
  const auto missing = run_histotrain("export --checkpoint /nonexistent --onnx /tmp/x.onnx");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no checkpoint"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace histotrain
