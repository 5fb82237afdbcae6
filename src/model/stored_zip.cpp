#include "model/stored_zip.h"

#include <algorithm>

#include "util/errors.h"

namespace histotrain {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEnd = 0x06054b50;
constexpr uint32_t kZip64End = 0x06064b50, kZip64Locator = 0x07064b50;
constexpr size_t kEndSize = 22, kCentralSize = 46, kLocalSize = 30, kZip64EndSize = 56, kZip64LocatorSize = 20;

// Little-endian fields at checked offsets.
class Cursor {
 public:
  Cursor(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}
  uint64_t read(uint64_t at, int width) const {
    if (at > bytes_.size() || bytes_.size() - at < static_cast<uint64_t>(width)) fail("a field lies past its end");
    uint64_t value = 0;
    for (int i = width - 1; i >= 0; --i) value = value << 8 | static_cast<unsigned char>(bytes_[at + i]);
    return value;
  }
  std::string_view span(uint64_t at, uint64_t size) const {
    if (at > bytes_.size() || bytes_.size() - at < size) fail("a record lies past its end");
    return bytes_.substr(at, size);
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(source_ + " is not a readable PyTorch zip file: " + why);
  }

 private:
  std::string_view bytes_;
  const std::string& source_;
};

struct Directory {
  uint64_t entries = 0, offset = 0, size = 0;
};

// The end-of-central-directory record: within the last 64 KiB (its comment's limit).
uint64_t find_end(std::string_view bytes, const Cursor& in) {
  if (bytes.size() < kEndSize) in.fail("it is too short");
  const uint64_t lowest = bytes.size() > kEndSize + 0xffff ? bytes.size() - kEndSize - 0xffff : 0;
  for (uint64_t at = bytes.size() - kEndSize + 1; at-- > lowest;)
    if (in.read(at, 4) == kEnd && at + kEndSize + in.read(at + 20, 2) == bytes.size()) return at;
  in.fail("it has no end-of-directory record");
}

// Where the central directory is; ZIP64's records when the classic fields overflow (files
// over 4 GiB, or over 65,535 records; PyTorch writes them always).
Directory find_directory(std::string_view bytes, const Cursor& in) {
  const uint64_t end = find_end(bytes, in);
  Directory d{in.read(end + 10, 2), in.read(end + 16, 4), in.read(end + 12, 4)};
  if (end >= kZip64LocatorSize && in.read(end - kZip64LocatorSize, 4) == kZip64Locator) {
    const uint64_t at = in.read(end - kZip64LocatorSize + 8, 8);
    if (in.read(at, 4) != kZip64End) in.fail("its ZIP64 locator points at no ZIP64 record");
    if (at + kZip64EndSize > end - kZip64LocatorSize) in.fail("its ZIP64 record overlaps the directory's end");
    d = {in.read(at + 32, 8), in.read(at + 48, 8), in.read(at + 40, 8)};
  }
  if (d.offset > bytes.size() || bytes.size() - d.offset < d.size) in.fail("its directory lies past its end");
  if (d.entries > d.size / kCentralSize) in.fail("its directory claims more records than it can hold");
  return d;
}

// Replaces the 0xffffffff sizes and offset of a record with its ZIP64 extra field's values.
void read_zip64_extra(const Cursor& in, uint64_t extra, uint64_t extra_size, uint64_t& size, uint64_t& compressed,
                      uint64_t& offset) {
  for (uint64_t at = extra; at + 4 <= extra + extra_size;) {
    const uint64_t id = in.read(at, 2), length = in.read(at + 2, 2);
    if (at + 4 + length > extra + extra_size) in.fail("a record's extra field is cut short");
    if (id == 1) {
      uint64_t field = at + 4;
      for (uint64_t* value : {&size, &compressed, &offset}) {
        if (*value != 0xffffffff) continue;
        if (field + 8 > at + 4 + length) in.fail("a ZIP64 field is cut short");
        *value = in.read(field, 8);
        field += 8;
      }
    }
    at += 4 + length;
  }
}

}  // namespace

bool looks_like_zip(std::string_view bytes) { return bytes.size() >= 4 && bytes.substr(0, 4) == "PK\x03\x04"; }

StoredZip::StoredZip(std::string_view bytes, std::string source) : bytes_(bytes), source_(std::move(source)) {
  const Cursor in(bytes_, source_);
  if (!looks_like_zip(bytes_)) in.fail("it does not start with a zip record");
  const Directory directory = find_directory(bytes_, in);
  uint64_t at = directory.offset;
  for (uint64_t k = 0; k < directory.entries; ++k) {
    if (in.read(at, 4) != kCentralHeader) in.fail("its directory holds a damaged entry");
    const uint64_t flags = in.read(at + 8, 2), method = in.read(at + 10, 2);
    uint64_t compressed = in.read(at + 20, 4), size = in.read(at + 24, 4), local = in.read(at + 42, 4);
    const uint64_t name_size = in.read(at + 28, 2), extra_size = in.read(at + 30, 2), comment = in.read(at + 32, 2);
    const std::string name(in.span(at + kCentralSize, name_size));
    read_zip64_extra(in, at + kCentralSize + name_size, extra_size, size, compressed, local);
    if (flags & 1) in.fail("record '" + name + "' is encrypted");
    const bool stored = method == 0 && compressed == size;
    if (!stored) compressed_[name] = true;
    if (in.read(local, 4) != kLocalHeader) in.fail("record '" + name + "' has no local header where the directory says");
    if (in.span(local + kLocalSize, in.read(local + 26, 2)) != name)
      in.fail("record '" + name + "' has another name in its local header");
    const uint64_t data = local + kLocalSize + in.read(local + 26, 2) + in.read(local + 28, 2);
    if (!records_.emplace(name, in.span(data, stored ? size : compressed).substr(0, stored ? size : 0)).second)
      in.fail("it holds record '" + name + "' twice");
    at += kCentralSize + name_size + extra_size + comment;
    if (at > directory.offset + directory.size) in.fail("its directory entries run past the directory");
  }
}

std::string_view StoredZip::record(const std::string& name) const {
  const auto found = records_.find(name);
  if (found == records_.end()) throw Error(source_ + " has no record '" + name + "'");
  if (compressed_.count(name))
    throw Error(source_ + ": record '" + name + "' is compressed (torch.save stores its records; histotrain reads only those)");
  return found->second;
}

}  // namespace histotrain
