// TensorBoard's event files, written by histotrain itself: a file of TFRecords (length, masked
// CRC32C of the length, the bytes, masked CRC32C of the bytes), each an Event protocol buffer
// (wall time, step, and a Summary of tagged scalars). Only the few fields scalars need are
// encoded, by hand: no protobuf library is involved. TensorBoard reads every such file in a
// folder, so a resumed run adds a file of its own beside the first.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace histotrain {

// CRC-32C (Castagnoli), and TFRecord's masking of it.
uint32_t crc32c(const void* data, size_t size);
uint32_t masked_crc32c(const void* data, size_t size);

// One TFRecord around `data`.
std::string tfrecord(const std::string& data);

class EventFileWriter {
 public:
  // Creates DIR/events.out.tfevents.<seconds>.<host>.<pid> with the file-version event.
  explicit EventFileWriter(const std::filesystem::path& dir);
  // One event at `step` holding each (tag, value) as a scalar; appended and flushed to disk.
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace histotrain
