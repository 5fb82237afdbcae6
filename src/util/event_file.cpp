#include "util/event_file.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>

#include "util/files.h"

namespace histotrain {

namespace {

std::array<uint32_t, 256> crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;  // reflected Castagnoli
    table[i] = c;
  }
  return table;
}

// Protocol-buffer wire format: a varint, a field key, and the field kinds Event and Summary use.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void key(std::string& out, int field, int wire_type) { varint(out, static_cast<uint64_t>(field << 3 | wire_type)); }
template <class T>
void fixed(std::string& out, int field, int wire_type, T value) {
  key(out, field, wire_type);
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian, as the wire format wants (x86, ARM)
  out.append(bytes, sizeof(T));
}
void bytes_field(std::string& out, int field, const std::string& bytes) {
  key(out, field, 2);
  varint(out, bytes.size());
  out += bytes;
}

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
std::string event(int64_t step, const std::string* file_version, const std::string* summary) {
  std::string e;
  fixed<double>(e, 1, 1, wall_time());
  key(e, 2, 0);
  varint(e, static_cast<uint64_t>(step));
  if (file_version) bytes_field(e, 3, *file_version);
  if (summary) bytes_field(e, 5, *summary);
  return e;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "host";
  std::string host = name;
  for (char& c : host)
    if (c == '/' || static_cast<unsigned char>(c) < 0x20) c = '_';
  return host.empty() ? "host" : host;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = crc32c_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string record;
  const uint64_t length = data.size();
  char length_bytes[8];
  std::memcpy(length_bytes, &length, 8);
  record.append(length_bytes, 8);
  const uint32_t length_crc = masked_crc32c(length_bytes, 8), data_crc = masked_crc32c(data.data(), data.size());
  record.append(reinterpret_cast<const char*>(&length_crc), 4);
  record += data;
  record.append(reinterpret_cast<const char*>(&data_crc), 4);
  return record;
}

EventFileWriter::EventFileWriter(const std::filesystem::path& dir) {
  const auto seconds = static_cast<long long>(wall_time());
  path_ = dir / ("events.out.tfevents." + std::to_string(seconds) + "." + host_name() + "." +
                 std::to_string(::getpid()));
  const std::string version = "brain.Event:2";
  append_bytes(path_, tfrecord(event(0, &version, nullptr)));
}

void EventFileWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string v;  // Summary.Value { string tag = 1; float simple_value = 2; }
    bytes_field(v, 1, tag);
    fixed<float>(v, 2, 5, static_cast<float>(value));
    bytes_field(summary, 1, v);  // Summary { repeated Value value = 1; }
  }
  append_bytes(path_, tfrecord(event(step, nullptr, &summary)));
}

}  // namespace histotrain
