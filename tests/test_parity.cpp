// histotrain in Python: torchvision's ResNet loads its checkpoints strictly and computes the same
// logits; scikit-learn recomputes its evaluation metrics from the saved predictions.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/initial_weights.h"
#include "model/model_export.h"
#include "model/resnet.h"
#include "test_util.h"

namespace histotrain {
namespace {

// The checkpoint's model.safetensors and its TorchScript export (model.pt) load into torchvision's ResNet in
// Python (strict) and give the same logits on the same input, with BN statistics that are not
// the defaults.
TEST(TorchvisionParity, CheckpointLoadsInPythonAndLogitsMatch) {
  if (testing::torchvision_python().empty()) {
    ASSERT_FALSE(testing::packages_required()) << "no python3 with torchvision and numpy: run.sh installs them";
    GTEST_SKIP() << "no python3 with torchvision and numpy (HISTOTRAIN_PYTHON)";
  }
  for (const std::string arch : {"resnet18", "resnet50"}) {
    testing::ScratchDir dir;
    torch::manual_seed(1);
    ResNet model(arch, 5);
    torch::NoGradGuard no_grad;
    for (auto& m : model->modules(false))
      if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
        bn->running_mean.uniform_(-0.5, 0.5);
        bn->running_var.uniform_(0.5, 2.0);
        bn->weight.uniform_(0.5, 1.5);
        bn->bias.uniform_(-0.2, 0.2);
      }
    model->eval();
    const torch::Tensor x = torch::randn({2, 3, 64, 64});
    const torch::Tensor logits = model->forward(x).contiguous();
    torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
    save_checkpoint(dir.path(), model, optimizer, GradScaler(false), {{"step", 0}});
    ExportSettings settings;
    settings.classes = {"a", "b", "c", "d", "e"};
    settings.image_size = 64;
    std::ofstream(dir / "model.pt", std::ios::binary) << torchscript_bytes(*model, settings);

    std::ofstream(dir / "x.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(x.data_ptr<float>()), static_cast<std::streamsize>(x.numel() * 4));
    nlohmann::json expected = {{"shape", x.sizes().vec()}, {"logits", nlohmann::json::array()}};
    for (int64_t i = 0; i < logits.size(0); ++i) {
      std::vector<float> row(logits[i].data_ptr<float>(), logits[i].data_ptr<float>() + logits.size(1));
      expected["logits"].push_back(row);
    }
    std::ofstream(dir / "logits.json") << expected.dump();
    for (const char* file : {"model.safetensors", "model.pt"}) {
      const std::string args = (dir / file).string() + " " + arch + " 5 " + (dir / "x.bin").string() + " " +
                               (dir / "logits.json").string();
      EXPECT_EQ(testing::run_torchvision_parity(args), 0) << args;
    }
  }
}

// train --init's reader on the files Python users have: torchvision's ResNet-18 and ResNet-50
// state dicts as torch.save writes them (plain, wrapped in a DataParallel training checkpoint,
// in float16) give histotrain the logits Python computes (1e-4), BatchNorm statistics included.
TEST(TorchvisionParity, StateDictsSavedByPythonGiveTheSameLogits) {
  if (testing::torchvision_python().empty()) {
    ASSERT_FALSE(testing::packages_required()) << "no python3 with torchvision and numpy: run.sh installs them";
    GTEST_SKIP() << "no python3 with torchvision and numpy (HISTOTRAIN_PYTHON)";
  }
  for (const std::string arch : {"resnet18", "resnet50"}) {
    testing::ScratchDir dir;
    const std::string command = testing::torchvision_python() + " " + HISTOTRAIN_SOURCE_DIR +
                                "/tests/parity/torchvision_state_dict.py " + arch + " 7 " + dir.path().string();
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    const auto expected = testing::read_json(dir / "logits.json");
    const auto shape = expected["shape"].get<std::vector<int64_t>>();
    torch::Tensor x = torch::empty(shape);
    std::ifstream(dir / "x.bin", std::ios::binary)
        .read(reinterpret_cast<char*>(x.data_ptr<float>()), static_cast<std::streamsize>(x.numel() * 4));
    torch::Tensor python_logits = torch::empty({shape[0], 7});
    for (int64_t i = 0; i < shape[0]; ++i)
      for (int64_t k = 0; k < 7; ++k) python_logits[i][k] = expected["logits"][i][k].get<float>();

    std::map<std::string, ResNet> loaded;
    for (const std::string file : {"weights.pth", "wrapped.pth", "half.pth"}) {
      ResNet model(arch, 7);
      const InitialWeights report = load_initial_weights(model, (dir / file).string());
      EXPECT_EQ(report.format, "torch.save");
      EXPECT_EQ(report.tensors, static_cast<int64_t>(module_tensors(*model).size())) << file;
      EXPECT_EQ(report.file_classes, 0) << file;
      EXPECT_EQ(report.stripped_prefix, file == "wrapped.pth" ? "module." : "") << file;
      EXPECT_EQ(model->bn1->num_batches_tracked.item<int64_t>(), 123) << file;
      model->eval();
      torch::NoGradGuard no_grad;
      if (file != "half.pth") {
        const float difference = (model->forward(x) - python_logits).abs().max().item<float>();
        std::printf("  %s %s: max abs logit difference to Python %.2g\n", arch.c_str(), file.c_str(), difference);
        EXPECT_LE(difference, 1e-4) << arch << " " << file;
      }
      loaded.emplace(file, model);
    }
    // float16 weights are the float32 ones rounded to half precision, no more, no less.
    const NamedTensors full = module_tensors(*loaded.at("weights.pth")), half = module_tensors(*loaded.at("half.pth"));
    for (size_t k = 0; k < full.size(); ++k)
      EXPECT_TRUE(torch::equal(half[k].second, full[k].second.is_floating_point()
                                                  ? full[k].second.to(torch::kHalf).to(full[k].second.scalar_type())
                                                  : full[k].second))
          << full[k].first;
  }
}

// A trained model's eval report against scikit-learn on its own --predictions CSV (AUC, average
// precision, balanced accuracy, log-loss, macro-F1 to 1e-9; ECE against numpy), with the
// checkpoint's temperature applied and without; predict gives the same calibrated probabilities.
TEST(SklearnParity, EvalMetricsEqualScikitLearnsOnTheSavedPredictions) {
  if (testing::sklearn_python().empty()) {
    ASSERT_FALSE(testing::packages_required()) << "no python3 with scikit-learn and numpy: run.sh installs them";
    GTEST_SKIP() << "no python3 with scikit-learn (HISTOTRAIN_PYTHON)";
  }
  testing::ScratchDir dir;
  const std::string data = testing::synth_data();
  const auto run = dir / "run";
  const auto trained = testing::run_histotrain("train --data " + data + " --groups " + data +
                                               "/groups.csv --image-size 32 --batch-size 16 --epochs 2 --threads 2 "
                                               "--quiet --out " + run.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto meta = testing::read_json(run / "checkpoint.json");
  ASSERT_TRUE(meta.contains("calibration")) << "a temperature is fitted on the validation split";
  for (const std::string calibration : {"temperature", "none"}) {
    const auto csv = dir / (calibration + ".csv"), report = dir / (calibration + ".json");
    const auto eval = testing::run_histotrain("eval --checkpoint " + run.string() + " --data " + data +
                                              " --json --quiet --bootstrap 200 --calibration " + calibration +
                                              " --predictions " + csv.string() + " --report " +
                                              (dir / ("report-" + calibration)).string());
    ASSERT_EQ(eval.exit_code, 0) << eval.err;
    std::ofstream(report) << eval.out;
    const auto json = nlohmann::json::parse(eval.out);
    EXPECT_EQ(json["calibration"]["applied"], calibration == "temperature");
    EXPECT_EQ(json["confidence_intervals"]["resamples"], 200);
    const auto report_md = testing::read_text(dir / ("report-" + calibration) / "report.md");
    EXPECT_NE(report_md.find("| macro_auc |"), std::string::npos) << report_md;
    for (const char* png : {"roc.png", "reliability.png"})
      EXPECT_TRUE(std::filesystem::exists(dir / ("report-" + calibration) / png)) << png << ": " << report_md;
    const std::string command = testing::sklearn_python() + " " + HISTOTRAIN_SOURCE_DIR +
                                "/tests/parity/sklearn_metrics.py " + csv.string() + " " + report.string();
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }
  // predict applies the same temperature: its probabilities for a tile are eval's (6 decimals).
  const std::string tile = data + "/lung_colon_image_set/lung_image_sets/lung_n/lungn1.jpeg";
  const auto predicted = testing::run_histotrain("predict --checkpoint " + run.string() + " --csv " +
                                                 (dir / "p.csv").string() + " " + tile);
  ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  const std::string predict_row = testing::read_text(dir / "p.csv").substr(testing::read_text(dir / "p.csv").find('\n') + 1);
  const std::string eval_csv = testing::read_text(dir / "temperature.csv");
  const std::string eval_row = eval_csv.substr(eval_csv.find(tile + ","));
  const auto field = [](const std::string& row, size_t index) {
    size_t start = 0;
    for (size_t i = 0; i < index; ++i) start = row.find(',', start) + 1;
    return std::stod(row.substr(start, row.find(',', start) - start));
  };
  for (size_t k = 0; k < 5; ++k) EXPECT_NEAR(field(predict_row, 3 + k), field(eval_row, 4 + k), 2e-6) << k;
}

}  // namespace
}  // namespace histotrain
