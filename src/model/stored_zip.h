// The zip container that torch.save writes (PyTorch's "zip format", the default since 1.6): every
// record stored, not compressed, found through the central directory. Read as untrusted data:
// every size and offset is checked against the file before a byte is used, so a damaged or
// hostile file is an Error, never a read outside it or an allocation larger than it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace histotrain {

class StoredZip {
 public:
  // `bytes`: the whole file (kept by reference: it must outlive this object); `source` names it
  // in errors. Throws Error for anything but a well-formed zip of stored records.
  StoredZip(std::string_view bytes, std::string source);

  bool has(const std::string& name) const { return records_.count(name) > 0; }
  // A record's bytes (a view into the file); throws Error naming the record when it is absent
  // or compressed (a TorchScript archive compresses its code: its names are still listed).
  std::string_view record(const std::string& name) const;
  // Every record, by name (a compressed one with no bytes).
  std::map<std::string, std::string_view> const& records() const { return records_; }

 private:
  std::string_view bytes_;
  std::string source_;
  std::map<std::string, std::string_view> records_;
  std::map<std::string, bool> compressed_;
};

// Whether `bytes` starts like a zip file (a local file header).
bool looks_like_zip(std::string_view bytes);

}  // namespace histotrain
