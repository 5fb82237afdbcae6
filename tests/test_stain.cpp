// Stain arithmetic: HED augmentation, Macenko and Reinhard normalisation, the saved reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "data/batches.h"
#include "data/dataset.h"
#include "data/stain.h"
#include "data/stain_normalization.h"
#include "test_util.h"
#include "util/errors.h"

namespace histotrain {
namespace {

constexpr int kSide = 64;
constexpr int64_t kPixels = int64_t{kSide} * kSide;

Vec3 rotated_towards(const Vec3& v, const Vec3& towards, double degrees) {
  // v turned by `degrees` in the plane of v and `towards`.
  const Vec3 a = unit(v);
  const double along = dot(towards, a);
  const Vec3 normal = unit({towards[0] - along * a[0], towards[1] - along * a[1], towards[2] - along * a[2]});
  const double r = degrees * 3.14159265358979323846 / 180;
  return unit({std::cos(r) * a[0] + std::sin(r) * normal[0], std::cos(r) * a[1] + std::sin(r) * normal[1],
               std::cos(r) * a[2] + std::sin(r) * normal[2]});
}

// Concentrations of a tile: a third pure haematoxylin, a third pure eosin, the rest mixed, a tenth
// glass; the same pattern for every pair of stains drawn with it.
std::vector<std::pair<double, double>> concentrations(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::pair<double, double>> c(static_cast<size_t>(kPixels));
  for (auto& [h, e] : c) {
    const double kind = u(rng);
    if (kind < 0.1) h = e = 0.01;
    else if (kind < 0.4) h = 0.3 + 1.2 * u(rng), e = 0.02 * u(rng);
    else if (kind < 0.7) h = 0.02 * u(rng), e = 0.3 + 0.9 * u(rng);
    else h = 0.2 + 0.8 * u(rng), e = 0.2 + 0.8 * u(rng);
  }
  return c;
}

std::vector<uint8_t> drawn(const std::vector<std::pair<double, double>>& c, const Vec3& h, const Vec3& e,
                           double h_scale = 1, double e_scale = 1) {
  std::vector<uint8_t> rgb(static_cast<size_t>(kPixels) * 3);
  for (size_t p = 0; p < c.size(); ++p)
    for (int k = 0; k < 3; ++k) {
      const double od = c[p].first * h_scale * h[k] + c[p].second * e_scale * e[k];
      rgb[p * 3 + k] = static_cast<uint8_t>(std::clamp(std::lround(value_of_density(od)), 0L, 255L));
    }
  return rgb;
}

double mean_abs_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
  return sum / static_cast<double>(a.size());
}

TEST(Stain, HedRoundTripIsWithinOneLevelAndZeroStrengthIsTheIdentity) {
  std::mt19937_64 rng(3);
  std::vector<uint8_t> pixels(3 * 200000);
  for (auto& v : pixels) v = static_cast<uint8_t>(rng() % 256);
  for (int v = 0; v < 256; ++v) pixels[3 * v] = pixels[3 * v + 1] = pixels[3 * v + 2] = static_cast<uint8_t>(v);
  std::vector<uint8_t> back = pixels;
  // RGB -> HED (concentrations c = od M^-1) -> RGB (c M), with sigma 0 drawing alpha 1, beta 0.
  apply_density_map(hed_density_map(draw_hed_jitter(0.0, rng)), back.data(), static_cast<int64_t>(pixels.size() / 3));
  int worst = 0;
  for (size_t i = 0; i < pixels.size(); ++i) worst = std::max(worst, std::abs(int(pixels[i]) - int(back[i])));
  EXPECT_LE(worst, 1);
  const HedJitter none = draw_hed_jitter(0.0, rng);
  EXPECT_EQ(none.alpha, (Vec3{1, 1, 1}));
  EXPECT_EQ(none.beta, (Vec3{0, 0, 0}));
}

TEST(Stain, HedAugmentationInTheBatchIsSeededBoundedAndMovesStains) {
  DataOptions options;
  options.root = testing::shared_synthetic_dataset(4, 64).string();
  options.image_size = 32;
  options.quiet = true;
  const TileDataset data = load_dataset(options);
  const BatchMaker batches(data, torch::kCPU);
  const std::vector<int64_t> items = {0, 1, 2, 3, 4, 5, 6, 7};
  Augmentation plain;
  plain.dihedral = false;
  Augmentation tiny = plain, strong = plain;
  tiny.hed_sigma = 1e-9;
  strong.hed_sigma = 0.3;
  std::mt19937_64 a(5), b(5), c(5), d(6);
  const auto reference = batches.make(items.data(), 8, &plain, &a).images;
  // A vanishing strength goes through the whole conversion and changes nothing visible.
  const float level = 1 / (255 * 0.229f);
  EXPECT_LT((batches.make(items.data(), 8, &tiny, &b).images - reference).abs().max().item<float>(), level);
  const auto first = batches.make(items.data(), 8, &strong, &c).images;
  std::mt19937_64 again(5);
  EXPECT_TRUE(first.equal(batches.make(items.data(), 8, &strong, &again).images)) << "not reproducible from the seed";
  EXPECT_FALSE(first.equal(batches.make(items.data(), 8, &strong, &d).images));
  EXPECT_GT((first - reference).abs().mean().item<float>(), 5 * level) << "sigma 0.3 should move colours";
}

TEST(Stain, StrengthParsesOnceAndRefusesWhatIsNotOne) {
  EXPECT_EQ(StainAugment::parse("none")->hed_sigma, 0);
  EXPECT_EQ(StainAugment::parse("hed")->hed_sigma, 0.05);
  EXPECT_EQ(StainAugment::parse("hed:0.1")->hed_sigma, 0.1);
  for (const char* bad : {"hed:", "hed:x", "hed:2", "hed:-0.1", "hed:0", "hed:nan", "hed:inf", "hedx", "HED", ""})
    EXPECT_FALSE(StainAugment::parse(bad)) << bad;
  for (const char* text : {"none", "hed", "hed:0.1", "hed:0.333"})
    EXPECT_EQ(StainAugment::parse(text)->text(), text);
}

// A tile drawn with known stains, then with others: Macenko finds the others' directions, and
// normalising to the first tile's reference gives the first tile back.
TEST(Stain, MacenkoRecoversKnownStainsAndUndoesARestain) {
  const Mat3& hed = ruifrok_hed();
  const auto c = concentrations(7);
  const std::vector<uint8_t> original = drawn(c, hed[0], hed[1]);
  const Vec3 other_h = rotated_towards(hed[0], hed[2], 12), other_e = rotated_towards(hed[1], hed[2], -10);
  std::vector<uint8_t> restained = drawn(c, other_h, other_e, 1.3, 0.8);

  const auto fitted = fit_macenko(restained.data(), kPixels);
  ASSERT_TRUE(fitted);
  EXPECT_LE(angle_degrees(fitted->h, other_h), 5.0);
  EXPECT_LE(angle_degrees(fitted->e, other_e), 5.0);

  const StainReference reference = fit_stain_reference(StainMethod::macenko, {original.data()}, kPixels, "original");
  EXPECT_LE(angle_degrees(reference.stains.h, hed[0]), 5.0);
  EXPECT_LE(angle_degrees(reference.stains.e, hed[1]), 5.0);
  const double before = mean_abs_difference(restained, original);
  ASSERT_TRUE(normalize_stain(reference, restained.data(), kPixels));
  const double after = mean_abs_difference(restained, original);
  // Stated bound: 3 levels on average (8-bit rounding, the percentiles' sampling).
  EXPECT_LT(after, 3.0) << "before normalisation: " << before;
  EXPECT_GT(before, 10.0);
}

TEST(Stain, MacenkoLeavesGlassAlone) {
  std::vector<uint8_t> glass(static_cast<size_t>(kPixels) * 3, 236);
  const std::vector<uint8_t> copy = glass;
  const StainReference reference = fit_stain_reference(
      StainMethod::macenko, {drawn(concentrations(1), ruifrok_hed()[0], ruifrok_hed()[1]).data()}, kPixels, "t");
  EXPECT_FALSE(normalize_stain(reference, glass.data(), kPixels));
  EXPECT_EQ(glass, copy);
  EXPECT_THROW(fit_stain_reference(StainMethod::macenko, {copy.data()}, kPixels, "glass"), Error);
}

LabStatistics lab_statistics(const std::vector<uint8_t>& rgb) {
  return *fit_reinhard(rgb.data(), static_cast<int64_t>(rgb.size() / 3));
}

TEST(Stain, ReinhardMatchesTheReferencesLabMeanAndDeviation) {
  const Mat3& hed = ruifrok_hed();
  auto c = concentrations(11);
  for (auto& [h, e] : c) h = std::max(h, 0.3);  // no glass: every pixel counts before and after
  const std::vector<uint8_t> target = drawn(c, hed[0], hed[1]);
  std::vector<uint8_t> tile = drawn(concentrations(12), rotated_towards(hed[0], hed[2], 15), hed[1], 0.7, 1.2);
  for (size_t p = 0; p < tile.size(); p += 3) tile[p] = std::min<uint8_t>(tile[p], 200);  // stained everywhere
  const StainReference reference = fit_stain_reference(StainMethod::reinhard, {target.data()}, kPixels, "target");
  ASSERT_TRUE(normalize_stain(reference, tile.data(), kPixels));
  const LabStatistics got = lab_statistics(tile), want = reference.lab;
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(got.mean[k], want.mean[k], 1.0) << "channel " << k;
    EXPECT_NEAR(got.std[k], want.std[k], 0.05 * want.std[k] + 0.3) << "channel " << k;
  }
}

TEST(Stain, ReferenceSurvivesJsonAndHostileNumbersAreRefused) {
  const auto tile = drawn(concentrations(2), ruifrok_hed()[0], ruifrok_hed()[1]);
  for (StainMethod method : {StainMethod::macenko, StainMethod::reinhard}) {
    const StainReference r = fit_stain_reference(method, {tile.data()}, kPixels, "tile.png");
    const StainReference back = stain_reference_of(nlohmann::json::parse(to_json(r).dump()));
    EXPECT_EQ(to_json(back), to_json(r));
    EXPECT_EQ(stain_key(back), stain_key(r));
  }
  EXPECT_EQ(stain_reference_of(nlohmann::json()).method, StainMethod::none);
  const nlohmann::json good = to_json(fit_stain_reference(StainMethod::macenko, {tile.data()}, kPixels, "t"));
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"method", "vahadane"}, {"h", {1, 0}}, {"h", {2, 0, 0}}, {"e", {"a", 0, 0}}, {"max_h", 1e300},
           {"max_e", -1}, {"h", good["e"]}}) {
    nlohmann::json bad = good;
    bad[key] = value;
    EXPECT_THROW(stain_reference_of(bad), Error) << key << " = " << value.dump();
  }
  nlohmann::json missing = good;
  missing.erase("max_e");
  EXPECT_THROW(stain_reference_of(missing), Error);
}

}  // namespace
}  // namespace histotrain
