// Grad-CAM points at the evidence: a ResNet-10 trained to tell tiles with a dark blob from tiles
// without one shows, for the blob's class, its largest value in the blob's quadrant. At 128 px
// (a 4 x 4 map): at 64 px the 2 x 2 map's peak fell in the wrong column for some seeds and LibTorch
// versions; at 128 px it held for seeds 0-2 on LibTorch 1.13 and 2.11.
#include <gtest/gtest.h>

#include <random>

#include "core/grad_cam.h"
#include "core/slide_evidence.h"
#include "util/bitmap_text.h"

namespace histotrain {
namespace {

constexpr int kSide = 128;
constexpr int kHalf = kSide / 2;

// Pink noise everywhere; with `quadrant` >= 0 a dark purple blob in that quadrant (0 top-left,
// 1 top-right, 2 bottom-left, 3 bottom-right), somewhere inside it.
torch::Tensor tile(int quadrant, std::mt19937_64& rng) {
  auto t = torch::rand({3, kSide, kSide}) * 0.2 + torch::tensor({0.8, 0.55, 0.7}).view({3, 1, 1});
  if (quadrant >= 0) {
    const int y = (quadrant / 2) * kHalf + 8 + static_cast<int>(rng() % 32), x = (quadrant % 2) * kHalf + 8 + static_cast<int>(rng() % 32);
    t.slice(1, y, y + 16).slice(2, x, x + 16) = torch::tensor({0.25, 0.1, 0.4}).view({3, 1, 1});
  }
  return (t - 0.6) / 0.25;
}

ResNet trained_blob_finder() {
  torch::manual_seed(0);
  std::mt19937_64 rng(1);
  ResNet model("resnet10", 2);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.02).momentum(0.9));
  model->train();
  for (int step = 0; step < 60; ++step) {
    std::vector<torch::Tensor> images;
    std::vector<int64_t> labels;
    for (int i = 0; i < 8; ++i) {
      const bool blob = i % 2 == 0;
      images.push_back(tile(blob ? static_cast<int>(rng() % 4) : -1, rng));
      labels.push_back(blob);
    }
    sgd.zero_grad();
    torch::nn::functional::cross_entropy(model->forward(torch::stack(images)), torch::tensor(labels)).backward();
    sgd.step();
  }
  model->eval();
  return model;
}

TEST(GradCam, PeaksInTheQuadrantThatHoldsTheEvidence) {
  ResNet model = trained_blob_finder();
  std::mt19937_64 rng(9);
  std::vector<torch::Tensor> images;
  for (int q = 0; q < 4; ++q) images.push_back(tile(q, rng));
  const GradCamBatch cam = grad_cam(model, torch::stack(images), /*target=*/1);  // all four in one pass
  ASSERT_EQ(cam.maps.sizes(), (torch::IntArrayRef{4, 4, 4}));  // 128 px at the last stage's stride of 32
  for (int q = 0; q < 4; ++q) {
    EXPECT_GT(cam.probabilities[q][1].item<float>(), 0.5) << "quadrant " << q << ": the blob was not learned";
    const int64_t peak = cam.maps[q].flatten().argmax().item<int64_t>();
    EXPECT_EQ((peak / 4) / 2 * 2 + (peak % 4) / 2, q) << cam.maps[q];  // the 2 x 2 cells of quadrant q
    EXPECT_FLOAT_EQ(cam.maps[q].max().item<float>(), 1.0f);
  }
  // The predicted class when none is asked for.
  EXPECT_TRUE(grad_cam(model, torch::stack(images)).classes.equal(cam.probabilities.argmax(1)));
}

TEST(GradCam, PictureKeepsTheTileWhereThereIsNoEvidenceAndLabelsTheCorner) {
  RgbImage tile(200, 200);
  std::fill(tile.pixels.begin(), tile.pixels.end(), 200);
  const torch::Tensor map = torch::tensor({{0.0f, 0.0f}, {0.0f, 1.0f}});
  const RgbImage picture = grad_cam_picture(tile, map, "lung_aca 0.97");
  const auto at = [&](int x, int y, int c) { return picture.pixels[(static_cast<size_t>(y) * 200 + x) * 3 + c]; };
  EXPECT_EQ(at(20, 60, 0), 200);                   // no evidence: the tile as it was
  EXPECT_LT(at(190, 190, 0), 100);                 // the peak: green over it
  EXPECT_GT(at(190, 190, 1), at(190, 190, 0));
  EXPECT_LT(at(label_width("lung_aca 0.97", 1) - 1, 1, 0), 100);  // the label's dark box
}

// A slide's evidence tiles for a class: those predicted as it, by its probability, highest first,
// a tile beside one already chosen only when too few others are left.
TEST(SlideEvidence, MostConfidentTilesAreThoseCalledTheClassSpreadOverTheSlide) {
  SlidePrediction p;
  p.classes = 2;
  p.geometry.side0 = 100;
  // Tiles 0-3 in a row, side by side; tile 4 far away.
  p.tiles = {{0, 0, 1}, {100, 0, 1}, {200, 0, 1}, {300, 0, 1}, {900, 900, 1}};
  p.probabilities = {0.9f, 0.1f, 0.95f, 0.05f, 0.8f, 0.2f, 0.7f, 0.3f, 0.6f, 0.4f};
  EXPECT_EQ(most_confident_tiles(p, 0, 1), (std::vector<size_t>{1}));
  EXPECT_EQ(most_confident_tiles(p, 0, 2), (std::vector<size_t>{1, 3}));     // 0 and 2 touch 1
  EXPECT_EQ(most_confident_tiles(p, 0, 3), (std::vector<size_t>{1, 3, 4}));
  EXPECT_EQ(most_confident_tiles(p, 0, 4), (std::vector<size_t>{1, 0, 3, 4}));  // then the best neighbour
  EXPECT_EQ(most_confident_tiles(p, 0, 8), (std::vector<size_t>{1, 0, 2, 3, 4}));
  p.probabilities[9] = 0.7f, p.probabilities[8] = 0.3f;  // tile 4 now called class 1
  EXPECT_EQ(most_confident_tiles(p, 1, 8), (std::vector<size_t>{4}));
  EXPECT_TRUE(most_confident_tiles(p, 1, 0).empty());
  p.tiles[3] = {0, 100, 1};  // below tile 0: corner to corner with tile 1
  EXPECT_EQ(most_confident_tiles(p, 0, 2), (std::vector<size_t>{1, 0}));
}

TEST(SlideEvidence, GalleryPutsCellsInRowsBelowTheTitle) {
  std::vector<RgbImage> cells;
  for (uint8_t v : {10, 60, 110, 160, 210}) {
    cells.emplace_back(32, 32);
    std::fill(cells.back().pixels.begin(), cells.back().pixels.end(), v);
  }
  const RgbImage picture = gallery(cells, 32, 4, "x");
  const int top = label_height(2) + 12;  // the title and its margins
  EXPECT_EQ(picture.width, 4 * 38 + 6);
  EXPECT_EQ(picture.height, top + 2 * 38);
  const auto at = [&](int x, int y) { return picture.pixels[(static_cast<size_t>(y) * picture.width + x) * 3]; };
  EXPECT_EQ(at(6 + 16, top + 16), 10);
  EXPECT_EQ(at(6 + 3 * 38 + 16, top + 16), 160);
  EXPECT_EQ(at(6 + 16, top + 38 + 16), 210);     // the fifth starts the second row
  EXPECT_EQ(at(6 + 38 + 16, top + 38 + 16), 255);  // and nothing beside it
  EXPECT_EQ(gallery(cells, 32, 4, std::string(40, 'a')).width, label_width(std::string(40, 'a'), 2) + 12);
}

}  // namespace
}  // namespace histotrain
