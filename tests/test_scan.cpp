#include <gtest/gtest.h>

#include "data/jpeg.h"
#include "data/scan.h"
#include "test_util.h"
#include "util/errors.h"

namespace histotrain {
namespace {

using testing::ScratchDir;

std::vector<uint8_t> tiny_jpeg() {
  RgbImage image(16, 16);
  std::fill(image.pixels.begin(), image.pixels.end(), 200);
  return encode_jpeg(image);
}

TEST(Scan, Lc25000NestedLayoutGivesClassFromDirectParentFolder) {
  ScratchDir dir;
  const auto jpeg = tiny_jpeg();
  testing::write_bytes(dir / "lung_colon_image_set/lung_image_sets/lung_aca/lungaca1.jpeg", jpeg);
  testing::write_bytes(dir / "lung_colon_image_set/lung_image_sets/lung_n/lungn1.JPG", jpeg);
  testing::write_bytes(dir / "lung_colon_image_set/colon_image_sets/colon_n/colonn1.jpeg", jpeg);
  testing::write_bytes(dir / "lung_colon_image_set/README.txt", {'h', 'i'});
  const ScanResult scan = scan_image_folder(dir.path().string());
  EXPECT_EQ(scan.classes, (std::vector<std::string>{"colon_n", "lung_aca", "lung_n"}));
  ASSERT_EQ(scan.images.size(), 3u);
  EXPECT_EQ(scan.images[0].class_name, "colon_n");
  EXPECT_EQ(scan.ignored_files, 1);
}

TEST(Scan, FlatImageFolderLayoutWorksAndHiddenFoldersAreSkipped) {
  ScratchDir dir;
  const auto jpeg = tiny_jpeg();
  testing::write_bytes(dir / "a/1.jpg", jpeg);
  testing::write_bytes(dir / "b/2.jpeg", jpeg);
  testing::write_bytes(dir / ".cache/c/3.jpeg", jpeg);
  const ScanResult scan = scan_image_folder(dir.path().string());
  EXPECT_EQ(scan.classes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(scan.images.size(), 2u);
}

TEST(Scan, EmptyClassFolderBesideOthersIsReported) {
  ScratchDir dir;
  testing::write_bytes(dir / "a/1.jpg", tiny_jpeg());
  std::filesystem::create_directories(dir / "b");
  const ScanResult scan = scan_image_folder(dir.path().string());
  ASSERT_EQ(scan.empty_class_folders.size(), 1u);
  EXPECT_NE(scan.empty_class_folders[0].find("/b"), std::string::npos);
}

TEST(Scan, MissingOrEmptyFolderIsAClearError) {
  ScratchDir dir;
  EXPECT_THROW(scan_image_folder((dir / "nope").string()), Error);
  std::filesystem::create_directories(dir / "empty/x");
  try {
    scan_image_folder((dir / "empty").string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no images found"), std::string::npos);
  }
}

TEST(Scan, ClassIndicesRejectUnknownClassByName) {
  ScratchDir dir;
  testing::write_bytes(dir / "lung_n/1.jpg", tiny_jpeg());
  testing::write_bytes(dir / "kidney/2.jpg", tiny_jpeg());
  const ScanResult scan = scan_image_folder(dir.path().string());
  try {
    class_indices(scan, {"lung_aca", "lung_n"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("kidney"), std::string::npos);
  }
  testing::write_bytes(dir / "lung_aca/3.jpg", tiny_jpeg());
  std::filesystem::remove_all(dir / "kidney");
  EXPECT_EQ(class_indices(scan_image_folder(dir.path().string()), {"colon_n", "lung_aca", "lung_n"}),
            (std::vector<int64_t>{1, 2}));
}

}  // namespace
}  // namespace histotrain
