// Throughput benchmark: JPEG decode+resize by thread count, and the training step (ResNet-18,
// the trainer's optimizer and batches) by size, threads, precision and memory format, split into
// batch assembly and model step. Prints figures; asserts nothing.
//
//   throughput_bench --data DIR [--images 2000] [--sizes 64,128] [--steps 20] [--threads-list 1,2]
//                    [--amp-list none,bf16] [--formats contiguous,channels_last] [--device cpu] [--graph]
//                    [--torch-sgd]
//
// "peak RSS" is the process's high-water mark: run one training configuration per process
// (bench/amp.sh does) for it to mean that configuration.
#include <CLI/CLI.hpp>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <chrono>
#include <fstream>
#include <cstdio>
#include <thread>

#include "core/amp.h"
#include "core/compat.h"
#include "core/runtime.h"
#include "data/batches.h"
#include "data/dataset.h"
#include "data/scan.h"
#include "data/tile_cache.h"
#include "model/resnet.h"
#include "train/graphed_step.h"
#include "train/optimizer.h"
#include "util/allocator.h"
#include "util/files.h"
#include "util/memory.h"

using namespace histotrain;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// An even spread of `n` images over the scan (all classes, both tile sizes).
static std::vector<std::string> sample_paths(const ScanResult& scan, int n) {
  std::vector<std::string> paths;
  const size_t stride = std::max<size_t>(1, scan.images.size() / static_cast<size_t>(n));
  for (size_t i = 0; i < scan.images.size() && paths.size() < static_cast<size_t>(n); i += stride)
    paths.push_back(scan.images[i].path);
  return paths;
}

static void bench_decode(const std::vector<std::string>& paths, int size, const std::vector<int>& thread_counts) {
  std::vector<uint8_t> out(paths.size() * size * size * 3);
  double serial = 0;
  for (int threads : thread_counts) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    const auto start = Clock::now();
    tbb::parallel_for(size_t{0}, paths.size(), [&](size_t i) {
      decode_tile(paths[i], size, out.data() + i * size * size * 3, nullptr);
    });
    const double rate = paths.size() / since(start);
    if (threads == thread_counts.front()) serial = rate;
    std::printf("decode+resize to %3d px, %2d thread(s): %8.0f img/s  (speedup %.2f)\n", size, threads, rate,
                rate / serial);
  }
}

// Every item of the dataset in one shuffled order (seed 0, epoch 0).
static std::vector<int64_t> shuffled_items(const TileDataset& data) {
  std::vector<int64_t> all(static_cast<size_t>(data.size()));
  for (int64_t i = 0; i < data.size(); ++i) all[i] = i;
  return epoch_order(all, 0, 0, true);
}

struct StepConfig {
  int threads, batch, steps;
  Precision precision;
  bool channels_last;
  torch::Device device;
  bool torch_sgd;  // SGD::step() instead of the trainer's update
};

// The trainer's weight update (trainer.cpp's update_weights without loss scaling), or SGD's own.
static void update_weights(torch::optim::SGD& optimizer, const StepConfig& c) {
  if (c.torch_sgd)
    optimizer.step();
  else if (c.device.is_cuda())
    multi_tensor_sgd_step(optimizer);
  else
    cpu_sgd_step(optimizer);
}

static void bench_train(const TileDataset& data, const StepConfig& c) {
  at::set_num_threads(c.threads);
  torch::manual_seed(0);
  ResNet model("resnet18", static_cast<int64_t>(data.classes.size()));
  model->to(c.device);
  if (c.channels_last) to_channels_last(*model);
  model->train();
  const int steps = c.steps, batch = c.batch;
  const auto optimizer = make_optimizer(model, OptimConfig{});  // the trainer's optimizer, default settings
  const BatchMaker maker(data, c.device,
                         c.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous);
  const std::vector<int64_t> order = shuffled_items(data);
  Augmentation augmentation;
  augmentation.max_shift = data.image_size() / 16;
  std::mt19937_64 rng(0);
  double batch_s = 0, step_s = 0, update_s = 0;
  const int warmup = 3;
  for (int s = 0; s < warmup + steps; ++s) {
    const auto t0 = Clock::now();
    const size_t first = (static_cast<size_t>(s) * batch) % (order.size() - batch);
    const Batch b = maker.make(order.data() + first, batch, &augmentation, &rng);
    const auto t1 = Clock::now();
    clear_gradients(*optimizer);
    torch::Tensor logits;
    {
      AutocastScope autocast(c.precision, c.device);
      logits = model->forward(b.images);
    }
    torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), b.labels).backward();
    if (c.device.is_cuda()) torch::cuda::synchronize();
    const auto t2 = Clock::now();
    update_weights(*optimizer, c);
    if (c.device.is_cuda()) torch::cuda::synchronize();
    if (s >= warmup) {
      batch_s += std::chrono::duration<double>(t1 - t0).count();
      step_s += since(t1);
      update_s += since(t2);
    }
  }
  const double images = static_cast<double>(steps) * batch;
  // Each configuration runs in its own process (bench/amp.sh), so the peaks are its own.
  const int gpu = std::max<int>(0, c.device.index());
  const std::string peak = c.device.is_cuda() ? "peak GPU memory " + std::to_string(compat::cuda_peak_allocated_bytes(gpu) >> 20)
                                              : "peak RSS " + std::to_string(static_cast<long>(peak_rss_mib()));
  std::printf("train resnet18 %3d px, batch %d, %d thread(s), %-4s %-13s: %7.1f img/s  (batch assembly %.1f ms, "
              "model step %.1f ms per step = %.0f img/s, of it the weight update %.1f ms%s, %s MiB)\n",
              data.image_size(), batch, c.threads, precision_name(c.precision).c_str(),
              c.channels_last ? "channels-last" : "contiguous", images / (batch_s + step_s), 1000 * batch_s / steps,
              1000 * step_s / steps, images / step_s, 1000 * update_s / steps, c.torch_sgd ? " by SGD::step()" : "",
              peak.c_str());
}

// The trainer's CUDA-graph step: batches assembled on the GPU from the resident tile cache, the
// step replayed as one graph, no synchronisation until the end. Also times the graph alone,
// replayed back to back on one batch: the GPU time of the step's kernels. Their ratio is the
// share of a step's wall time spent in the train step's kernels (the rest: batch assembly and gaps).
static void bench_train_graph(const TileDataset& data, const StepConfig& c) {
  torch::manual_seed(0);
  ResNet model("resnet18", static_cast<int64_t>(data.classes.size()));
  model->to(c.device);
  if (c.channels_last) to_channels_last(*model);
  model->train();
  const auto optimizer = make_optimizer(model, OptimConfig{});
  const BatchMaker maker(data, c.device, c.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous);
  const std::vector<int64_t> order = shuffled_items(data);
  Augmentation augmentation;
  augmentation.max_shift = data.image_size() / 16;
  std::mt19937_64 rng(0);
  const auto batch_at = [&](int s) {
    const size_t first = (static_cast<size_t>(s) * c.batch) % (order.size() - c.batch);
    return maker.make(order.data() + first, c.batch, &augmentation, &rng);
  };
  const auto capture_start = Clock::now();
  GraphedTrainStep graph(model, *optimizer, c.precision, LossOptions{0.1, {}}, nullptr, batch_at(0));
  torch::cuda::synchronize();
  const double capture_s = since(capture_start);
  for (int s = 0; s < 3; ++s) graph.step(batch_at(s), 0.01, 0);  // the first replays upload the graph
  torch::cuda::synchronize();
  auto start = Clock::now();
  for (int s = 0; s < c.steps; ++s) graph.step(batch_at(s), 0.01, 0);
  torch::cuda::synchronize();
  const double whole_s = since(start);
  const Batch fixed = batch_at(0);
  start = Clock::now();
  for (int s = 0; s < c.steps; ++s) graph.step(fixed, 0.01, 0);
  torch::cuda::synchronize();
  const double kernels_s = since(start);
  const double images = static_cast<double>(c.steps) * c.batch;
  std::printf("graph resnet18 %3d px, batch %d, %-4s %-13s: %7.0f img/s whole step (batch assembly on the GPU), "
              "%7.0f img/s graph alone; train-step kernels %.0f%% of the step; capture %.2f s; peak GPU memory %lld MiB\n",
              data.image_size(), c.batch, precision_name(c.precision).c_str(),
              c.channels_last ? "channels-last" : "contiguous", images / whole_s, images / kernels_s,
              100 * kernels_s / whole_s, capture_s,
              static_cast<long long>(compat::cuda_peak_allocated_bytes(std::max<int>(0, c.device.index())) >> 20));
}

int main(int argc, char** argv) {
  histotrain::keep_freed_memory();  // as the histotrain program does
  CLI::App app{"histotrain foundation benchmark"};
  std::string data_root, cache_dir = "/tmp/histotrain-bench-cache";
  int images = 2000, steps = 20, batch = 32;
  std::vector<int> sizes = {64, 128};
  std::vector<int> thread_counts;
  std::vector<std::string> amps = {"none"}, formats = {"contiguous"};
  std::string device_name = "cpu";
  bool graph = false, torch_sgd = false;
  app.add_option("--data", data_root, "Dataset root")->required();
  app.add_option("--images", images, "Images for the decode benchmark");
  app.add_option("--sizes", sizes, "Training image sizes")->delimiter(',');
  app.add_option("--steps", steps, "Timed training steps (after 3 warm-up steps)");
  app.add_option("--batch-size", batch, "Batch size");
  app.add_option("--threads-list", thread_counts, "Thread counts to measure")->delimiter(',');
  app.add_option("--cache-dir", cache_dir, "Tile cache folder for the training part");
  app.add_option("--amp-list", amps, "Precisions: none, bf16, fp16")->delimiter(',');
  app.add_option("--formats", formats, "Memory formats: contiguous, channels_last")->delimiter(',');
  app.add_option("--device", device_name, "cpu | cuda");
  app.add_flag("--graph", graph, "The trainer's CUDA-graph step (CUDA, LibTorch 2.x) instead of the eager one");
  app.add_flag("--torch-sgd", torch_sgd, "Update the weights with SGD::step() instead of the trainer's update");
  CLI11_PARSE(app, argc, argv);
  if (thread_counts.empty())
    for (int t = 1; t <= static_cast<int>(std::thread::hardware_concurrency()); t *= 2) thread_counts.push_back(t);

  const ScanResult scan = scan_image_folder(data_root);
  const auto paths = sample_paths(scan, std::max(images, 1));
  if (images > 0)
    std::printf("# %zu images sampled from %s; %u cores\n", paths.size(), scan.root.c_str(),
                std::thread::hardware_concurrency());
  if (images > 0)
    for (int size : sizes) bench_decode(paths, size, thread_counts);
  const torch::Device device = parse_device(device_name);

  for (int size : sizes) {
    DataOptions options;
    options.root = data_root;
    options.image_size = size;
    options.cache_dir = cache_dir;
    options.quiet = true;
    const TileDataset data = load_dataset(options);
    for (int threads : thread_counts)
      for (const auto& amp : amps)
        for (const auto& format : formats) {
          const Precision precision = parse_precision(amp);
          check_precision_supported(precision, device);
          const StepConfig config{threads, batch, steps, precision, format == "channels_last", device, torch_sgd};
          graph ? bench_train_graph(data, config) : bench_train(data, config);
        }
  }
  return 0;
}
