// TensorBoard event files as histotrain writes them: CRC-32C, TFRecord framing, and an append
// that never follows a link.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "test_util.h"
#include "util/errors.h"
#include "util/event_file.h"
#include "util/files.h"

namespace histotrain {
namespace {

TEST(EventFile, Crc32cMatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // RFC 3720's check value for CRC-32C
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(EventFile, ARecordIsLengthCrcDataCrc) {
  const std::string data = "event bytes";
  const std::string record = tfrecord(data);
  ASSERT_EQ(record.size(), 8 + 4 + data.size() + 4);
  uint64_t length = 0;
  std::memcpy(&length, record.data(), 8);
  EXPECT_EQ(length, data.size());
  uint32_t length_crc = 0, data_crc = 0;
  std::memcpy(&length_crc, record.data() + 8, 4);
  std::memcpy(&data_crc, record.data() + 12 + data.size(), 4);
  EXPECT_EQ(length_crc, masked_crc32c(record.data(), 8));
  EXPECT_EQ(data_crc, masked_crc32c(data.data(), data.size()));
  EXPECT_EQ(record.substr(12, data.size()), data);
}

TEST(EventFile, TheWriterAppendsRecordsAndNeverThroughALink) {
  testing::ScratchDir dir;
  EventFileWriter writer(dir.path());
  const auto before = std::filesystem::file_size(writer.path());
  writer.scalars(10, {{"val/acc", 0.5}, {"train/loss", 1.25}});
  EXPECT_GT(std::filesystem::file_size(writer.path()), before);
  // A link where the log goes: appending refuses it and the target is untouched.
  const auto outside = dir / "outside.txt";
  std::ofstream(outside) << "keep";
  std::filesystem::create_symlink(outside, dir / "metrics.jsonl");
  EXPECT_THROW(append_line(dir / "metrics.jsonl", "{}"), Error);
  EXPECT_EQ(testing::read_text(outside), "keep");
}

}  // namespace
}  // namespace histotrain
