// The cost per image of each stain and explanation piece, on this machine's cores: HED jitter in
// the batch gather (against the gather without it), Macenko and Reinhard normalisation of one
// tile (done once per tile, into the tile cache), and Grad-CAM of a batch (against a plain
// forward of the same batch). Prints one line per piece; record it with `histotrain info`.
//
//   build/bench/stain_cost [THREADS]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "core/grad_cam.h"
#include "data/batches.h"
#include "data/dataset.h"
#include "data/stain.h"
#include "data/stain_normalization.h"
#include "synth/synth.h"

using namespace histotrain;

namespace {

template <class F>
double best_ms(int repeats, F&& f) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// `count` synthetic H&E tiles at `side` px, uint8 RGB, back to back.
std::vector<uint8_t> tiles(int count, int side) {
  std::vector<uint8_t> out;
  for (int i = 0; i < count; ++i) {
    const RgbImage t = render_synthetic_tile(lc25000_classes()[i % 5], side, 1000 + i);
    out.insert(out.end(), t.pixels.begin(), t.pixels.end());
  }
  return out;
}

void hed_in_batch(int side) {
  constexpr int kBatch = 32;
  std::vector<uint8_t> pixels = tiles(kBatch, side);
  const auto nhwc = torch::from_blob(pixels.data(), {kBatch, side, side, 3}, torch::kUInt8);
  std::mt19937_64 rng(0);
  const double plain = best_ms(5, [&] { normalize_uint8_nhwc(nhwc); });
  const double jittered = best_ms(5, [&] { normalize_uint8_nhwc(jitter_stains(nhwc, 0.05, rng)); });
  std::printf("hed jitter, %d px: %.3f ms per image (normalisation alone %.3f ms)\n", side, (jittered - plain) / kBatch,
              plain / kBatch);
}

void normalisation(StainMethod method, int side) {
  constexpr int kTiles = 32;
  std::vector<uint8_t> pixels = tiles(kTiles, side);
  const int64_t per_tile = int64_t{side} * side;
  const StainReference reference = fit_stain_reference(method, {pixels.data()}, per_tile, "first tile");
  const double ms = best_ms(3, [&] {
    std::vector<uint8_t> copy = pixels;
    for (int i = 0; i < kTiles; ++i) normalize_stain(reference, copy.data() + i * per_tile * 3, per_tile);
  });
  std::printf("%s normalisation, %d px: %.3f ms per tile, one thread (once per tile, into the cache)\n",
              spelling(method).c_str(), side, ms / kTiles);
}

void explanation(const std::string& arch, int side) {
  constexpr int kBatch = 32;
  ResNet model(arch, 5);
  model->eval();
  const auto x = torch::randn({kBatch, 3, side, side});
  const double forward = best_ms(3, [&] {
    torch::NoGradGuard no_grad;
    model->forward(x);
  });
  const double cam = best_ms(3, [&] { grad_cam(model, x); });
  std::printf("grad-cam, %s at %d px, batch %d: %.2f ms per tile (a forward alone %.2f ms)\n", arch.c_str(), side,
              kBatch, cam / kBatch, forward / kBatch);
}

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 2);
  std::printf("threads: %d\n", at::get_num_threads());
  for (int side : {64, 224}) hed_in_batch(side);
  for (int side : {64, 224}) {
    normalisation(StainMethod::macenko, side);
    normalisation(StainMethod::reinhard, side);
  }
  explanation("resnet18", 224);
  return 0;
}
