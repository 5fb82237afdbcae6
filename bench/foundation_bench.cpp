// Foundation benchmark: JPEG decode+resize throughput by thread count, and the serial training
// step at 64 and 128 px, split into batch assembly and model step. Prints figures; asserts nothing.
//
//   foundation_bench --data DIR [--images 2000] [--sizes 64,128] [--steps 20] [--threads-list 1,2]
#include <CLI/CLI.hpp>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "data/batches.h"
#include "data/dataset.h"
#include "data/scan.h"
#include "data/tile_cache.h"
#include "model/resnet.h"
#include "train/optimizer.h"
#include "util/files.h"

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

static void bench_train(const TileDataset& data, int steps, int threads, int batch) {
  at::set_num_threads(threads);
  torch::manual_seed(0);
  ResNet model("resnet18", static_cast<int64_t>(data.classes.size()));
  model->train();
  const auto optimizer = make_optimizer(model, TrainConfig{});  // the trainer's optimizer, default settings
  const BatchMaker maker(data, torch::kCPU);
  std::vector<int64_t> order = epoch_order(std::vector<int64_t>([&] {
                                             std::vector<int64_t> all(static_cast<size_t>(data.size()));
                                             for (int64_t i = 0; i < data.size(); ++i) all[i] = i;
                                             return all;
                                           }()),
                                           0, 0, true);
  Augmentation augmentation;
  augmentation.max_shift = data.image_size() / 16;
  std::mt19937_64 rng(0);
  double batch_s = 0, step_s = 0;
  const int warmup = 3;
  for (int s = 0; s < warmup + steps; ++s) {
    const auto t0 = Clock::now();
    const size_t first = (static_cast<size_t>(s) * batch) % (order.size() - batch);
    const Batch b = maker.make(order.data() + first, batch, &augmentation, &rng);
    const auto t1 = Clock::now();
    clear_gradients(*optimizer);
    torch::nn::functional::cross_entropy(model->forward(b.images), b.labels).backward();
    optimizer->step();
    if (s >= warmup) {
      batch_s += std::chrono::duration<double>(t1 - t0).count();
      step_s += since(t1);
    }
  }
  const double images = static_cast<double>(steps) * batch;
  std::printf("train resnet18 %3d px, batch %d, %d thread(s): %7.1f img/s  (batch assembly %.1f ms, model step %.1f ms per step)\n",
              data.image_size(), batch, threads, images / (batch_s + step_s), 1000 * batch_s / steps,
              1000 * step_s / steps);
}

int main(int argc, char** argv) {
  CLI::App app{"histotrain foundation benchmark"};
  std::string data_root, cache_dir = "/tmp/histotrain-bench-cache";
  int images = 2000, steps = 20, batch = 32;
  std::vector<int> sizes = {64, 128};
  std::vector<int> thread_counts;
  app.add_option("--data", data_root, "Dataset root")->required();
  app.add_option("--images", images, "Images for the decode benchmark");
  app.add_option("--sizes", sizes, "Training image sizes")->delimiter(',');
  app.add_option("--steps", steps, "Timed training steps (after 3 warm-up steps)");
  app.add_option("--batch-size", batch, "Batch size");
  app.add_option("--threads-list", thread_counts, "Thread counts to measure")->delimiter(',');
  app.add_option("--cache-dir", cache_dir, "Tile cache folder for the training part");
  CLI11_PARSE(app, argc, argv);
  if (thread_counts.empty())
    for (int t = 1; t <= static_cast<int>(std::thread::hardware_concurrency()); t *= 2) thread_counts.push_back(t);

  const ScanResult scan = scan_image_folder(data_root);
  const auto paths = sample_paths(scan, images);
  std::printf("# %zu images sampled from %s; %u cores\n", paths.size(), scan.root.c_str(),
              std::thread::hardware_concurrency());
  for (int size : sizes) bench_decode(paths, size, thread_counts);

  for (int size : sizes) {
    DataOptions options;
    options.root = data_root;
    options.image_size = size;
    options.cache_dir = cache_dir;
    options.quiet = true;
    const TileDataset data = load_dataset(options);
    for (int threads : thread_counts) bench_train(data, steps, threads, batch);
  }
  return 0;
}
