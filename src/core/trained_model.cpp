#include "core/trained_model.h"

#include "core/checkpoint.h"

namespace histotrain {

nlohmann::json normalization_json(const Normalization& n) {
  return {{"mean", {n.mean[0], n.mean[1], n.mean[2]}}, {"std", {n.std[0], n.std[1], n.std[2]}}};
}

Normalization normalization_of(const nlohmann::json& meta) {
  Normalization n;
  if (!meta.contains("normalization")) return n;
  for (size_t c = 0; c < 3; ++c) {
    n.mean[c] = meta["normalization"]["mean"][c].get<float>();
    n.std[c] = meta["normalization"]["std"][c].get<float>();
  }
  return n;
}

void normalize_tile_stains(const TrainedModel& trained, uint8_t* tiles, int64_t count) {
  if (trained.stain.method == StainMethod::none) return;
  const int64_t pixels = int64_t{trained.image_size} * trained.image_size;
  at::parallel_for(0, count, 1, [&](int64_t first, int64_t end) {
    for (int64_t i = first; i < end; ++i) normalize_stain(trained.stain, tiles + i * pixels * 3, pixels);
  });
}

TrainedModel open_trained_model(const std::string& checkpoint_arg, torch::Device device, const std::string& amp,
                                bool trust_torchscript) {
  TrainedModel trained;
  trained.run = run_folder(checkpoint_arg);
  const nlohmann::json meta = read_checkpoint_meta(trained.run);
  trained.classes = meta.at("classes").get<std::vector<std::string>>();
  trained.image_size = meta.at("image_size").get<int>();
  const nlohmann::json config = meta.value("config", nlohmann::json::object());
  trained.precision = parse_precision(amp.empty() ? config.value("amp", std::string("none")) : amp);
  if (amp.empty() && trained.precision == Precision::fp16 && !device.is_cuda())
    trained.precision = Precision::fp32;  // trained in fp16 on a GPU, used on a CPU: fp32 is exact enough
  check_precision_supported(trained.precision, device);
  trained.channels_last = config.value("channels_last", false);
  if (meta.contains("calibration")) trained.temperature = meta["calibration"]["temperature"].get<double>();
  trained.normalization = normalization_of(meta);
  trained.stain = stain_reference_of(meta.value("stain", nlohmann::json()));
  trained.input_mpp = meta.value("input_mpp", 0.0);
  trained.model = load_model(trained.run, meta, trust_torchscript);
  trained.model->to(device);
  if (trained.channels_last) to_channels_last(*trained.model);
  trained.model->eval();
  return trained;
}

}  // namespace histotrain
