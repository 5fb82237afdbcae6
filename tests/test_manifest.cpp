// Datasets listed by a CSV manifest (data/manifest.h): what a row may name, and how bad rows are
// reported.
#include <gtest/gtest.h>

#include <fstream>

#include "data/manifest.h"
#include "test_util.h"
#include "util/csv.h"
#include "util/errors.h"

namespace histotrain {
namespace {

using testing::ScratchDir;
namespace fs = std::filesystem;

void touch(const fs::path& path) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << "x";
}

std::string error_of(const fs::path& manifest) {
  try {
    read_manifest(manifest.string());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Manifest, RowsBecomeImagesWithTheirLabelGroupAndSplit) {
  ScratchDir dir;
  touch(dir / "tiles/a.png");
  touch(dir / "tiles/sub/b.tif");
  touch(dir / "c,d.jpeg");
  std::ofstream(dir / "m.csv") << "split,label,path,stain,group\n"
                                  "train,lung_n,tiles/a.png,HE,g1\n"
                                  "test,lung_aca,./tiles/sub/b.tif,HE,g2\n"
                                  "val,lung_n,\"c,d.jpeg\",,\n";
  const ScanResult scan = read_manifest((dir / "m.csv").string());
  ASSERT_EQ(scan.images.size(), 3u);
  EXPECT_EQ(scan.classes, (std::vector<std::string>{"lung_aca", "lung_n"}));
  EXPECT_EQ(scan.images[1].path, (dir / "tiles/sub/b.tif").string());
  EXPECT_EQ(scan.images[1].class_name, "lung_aca");
  EXPECT_EQ(scan.images[1].group, "g2");
  EXPECT_EQ(scan.images[1].split, "test");
  EXPECT_EQ(scan.images[2].path, (dir / "c,d.jpeg").string());
  EXPECT_EQ(scan.images[2].group, "");
  EXPECT_EQ(scan.images[0].bytes, 1u);
  EXPECT_EQ(scan.root, (dir / "m.csv").string());  // the manifest's own tile cache
}

TEST(Manifest, OnlyPathAndLabelAreRequired) {
  ScratchDir dir;
  touch(dir / "a.png");
  std::ofstream(dir / "m.csv") << "path,label\na.png,x\n";
  const ScanResult scan = read_manifest((dir / "m.csv").string());
  ASSERT_EQ(scan.images.size(), 1u);
  EXPECT_TRUE(scan.images[0].split.empty());
  std::ofstream(dir / "bad.csv") << "file,class\na.png,x\n";
  EXPECT_NE(error_of(dir / "bad.csv").find("'path' and 'label' columns"), std::string::npos) << error_of(dir / "bad.csv");
}

// Every bad row is named by its line, and none makes histotrain read a file outside the
// manifest's folder.
TEST(Manifest, BadRowsAreListedByLineNumber) {
  ScratchDir dir;
  touch(dir / "data/a.png");
  touch(dir / "outside.png");
  fs::create_directories(dir / "data/folder.png");
  fs::create_symlink(dir / "outside.png", dir / "data/link.png");
  std::ofstream(dir / "data/m.csv") << "path,label,split\n"
                                       "a.png,x,train\n"          // line 2: fine
                                       "/nonexistent/x.png,x,train\n"  // 3: absolute, missing
                                       "../outside.png,x,train\n" // 4: leaves the folder
                                       "missing.png,x,train\n"    // 5: no such file
                                       "a.png,x,holdout\n"        // 6: unknown split (and a duplicate)
                                       ",x,train\n"               // 7: empty path
                                       "a.png,,train\n"           // 8: empty label
                                       "folder.png,x,train\n"     // 9: a folder
                                       "a.png,x,train\n"          // 10: the same file again
                                       "link.png,x,train\n";      // 11: a link to a file outside
  const std::string error = error_of(dir / "data/m.csv");
  EXPECT_NE(error.find("9 bad row(s)"), std::string::npos) << error;
  for (const std::string expected :
       {"line 3: no such file: /nonexistent/x.png", "line 4: a path outside", "line 5: no such file", "line 6: split 'holdout'",
        "line 7: empty path", "line 8: empty label", "line 9: not a regular file", "line 10: the same file",
        "line 11: a path whose links lead outside"})
    EXPECT_NE(error.find(expected), std::string::npos) << expected << "\n" << error;
  EXPECT_EQ(error.find("line 2:"), std::string::npos) << error;
}

// A user's own CSV: other column names, relative paths from another folder, absolute paths.
TEST(Manifest, ColumnsRootAndAbsolutePathsAreTheUsersOwn) {
  ScratchDir dir;
  touch(dir / "tiles/a.png");
  touch(dir / "tiles/b.png");
  touch(dir / "elsewhere/c.png");
  fs::create_directories(dir / "lists");
  std::ofstream(dir / "lists/labels.csv") << "filename,diagnosis,patient_id,notes\n"
                                              "a.png,tumour,p1,x\n"
                                              "b.png,normal,p1,\n" +
                                                 (dir / "elsewhere/c.png").string() + ",normal,p2,\n";
  ManifestOptions options;
  options.columns = parse_manifest_columns("path=filename,label=diagnosis,group=patient_id");
  options.root = (dir / "tiles").string();
  const ScanResult scan = read_manifest((dir / "lists/labels.csv").string(), options);
  ASSERT_EQ(scan.images.size(), 3u);
  EXPECT_EQ(scan.classes, (std::vector<std::string>{"normal", "tumour"}));
  EXPECT_EQ(scan.images[0].group, "p1");
  EXPECT_EQ(fs::path(scan.images[2].path), dir / "elsewhere/c.png");
  EXPECT_TRUE(scan.from_manifest);
  // The same CSV without --columns names what it found and how to map it.
  try {
    read_manifest((dir / "lists/labels.csv").string());
    ADD_FAILURE() << "no path column";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--columns"), std::string::npos) << e.what();
  }
  for (const char* bad : {"path", "path=", "colour=c", "path=a,,label=b"})
    EXPECT_THROW(parse_manifest_columns(bad), UsageError) << bad;
  EXPECT_EQ(parse_manifest_columns("").path, "path");
}

TEST(Manifest, AnEmptyOrMissingManifestIsAClearError) {
  ScratchDir dir;
  std::ofstream(dir / "empty.csv") << "";
  EXPECT_NE(error_of(dir / "empty.csv").find("is empty"), std::string::npos);
  std::ofstream(dir / "header.csv") << "path,label\n";
  EXPECT_NE(error_of(dir / "header.csv").find("lists no images"), std::string::npos);
  EXPECT_FALSE(error_of(dir / "nope.csv").empty());
}

// Found by fuzz_csv: a quoted field that ends in CR lost it when the record's LF followed, so a
// name ending in CR did not read back from the list it was written to.
TEST(Csv, ACarriageReturnInsideQuotesIsTheFieldsOwn) {
  for (const std::string name : {"a\r", "\xEF\xBB\xBFpath,label\ra.png,x\r", "b\r\n", "\r"}) {
    const auto records = parse_csv(csv_field(name) + "\r\n" + csv_field(name) + "\n", "test");
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].fields.at(0), name);
    EXPECT_EQ(records[1].fields.at(0), name);
  }
  EXPECT_EQ(parse_csv("x,y\r\n1,2\r", "test").at(1).fields.at(1), "2") << "CRLF and a final CR are line ends";
}

// Tiles cut from slides carry their scale: one shared mpp is the dataset's, mixed ones are none.
TEST(Manifest, AnMppColumnSharedByEveryTileIsTheDatasetsScale) {
  ScratchDir dir;
  touch(dir / "a.png");
  touch(dir / "b.png");
  std::ofstream(dir / "same.csv") << "path,label,mpp\na.png,x,0.5\nb.png,y,0.50000\n";
  EXPECT_DOUBLE_EQ(read_manifest((dir / "same.csv").string()).tile_mpp, 0.5);
  std::ofstream(dir / "mixed.csv") << "path,label,mpp\na.png,x,0.5\nb.png,y,1.0\n";
  EXPECT_EQ(read_manifest((dir / "mixed.csv").string()).tile_mpp, 0);
  std::ofstream(dir / "unknown.csv") << "path,label,mpp\na.png,x,0.5\nb.png,y,\n";
  EXPECT_EQ(read_manifest((dir / "unknown.csv").string()).tile_mpp, 0);
  std::ofstream(dir / "bad.csv") << "path,label,mpp\na.png,x,-1\nb.png,y,fast\n";
  try {
    read_manifest((dir / "bad.csv").string());
    ADD_FAILURE() << "a negative or wordy mpp is a bad row";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2: mpp '-1'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 3: mpp 'fast'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace histotrain
