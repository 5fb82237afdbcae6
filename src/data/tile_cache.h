// Decode once: every image of a scan, decoded and resized to size x size RGB, packed into one
// file that later runs memory-map instead of decoding JPEGs again each epoch. The file is
// reused while the source files (paths, sizes, mtimes) and the tile size are unchanged, and
// rebuilt otherwise.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/scan.h"

namespace histotrain {

struct TileCacheOptions {
  int size = 128;          // tile side in pixels
  std::string cache_dir;   // empty: default_cache_dir()
  int threads = 0;         // decode threads; 0: all cores
  bool quiet = false;      // no progress output
};

// Changes when any file of the scan is added, removed, resized or touched; `salt` keys what was
// made from the files (a tile size, a method version).
uint64_t scan_fingerprint(const ScanResult& scan, uint64_t salt);

// "<folder name>-<hash of its path>": the start of the names of every file cached for a dataset.
std::string cache_file_base(const ScanResult& scan);

// $HISTOTRAIN_CACHE, else $XDG_CACHE_HOME/histotrain, else ~/.cache/histotrain.
std::string default_cache_dir();

// What a derived cache does to each tile of its source: `apply` changes one tile (size x size RGB)
// in place and says whether it did. `name` and `key` (what exactly it does) name the cache file.
struct TileTransform {
  std::string name;
  uint64_t key = 0;
  std::function<bool(uint8_t* tile, int64_t pixels)> apply;
};

class TileCache {
 public:
  // Opens the cache for `scan` at options.size, building it first when missing or stale.
  static std::shared_ptr<TileCache> open_or_build(const ScanResult& scan, const TileCacheOptions& options);
  // The cache file at `path` when it is complete, intact (checksum) and holds `count` tiles of
  // `size` px made from the files `fingerprint` describes; null otherwise, whatever its bytes.
  // A cache of `source`'s tiles (made from `scan`) passed through `transform` once, kept beside it
  // and rebuilt when the source's files or the transform change.
  static std::shared_ptr<TileCache> open_or_derive(const ScanResult& scan, const TileCache& source,
                                                   const TileTransform& transform, const TileCacheOptions& options);
  static std::shared_ptr<TileCache> open_existing(const std::string& path, uint64_t fingerprint, int64_t count,
                                                  int size);
  ~TileCache();
  TileCache(const TileCache&) = delete;
  TileCache& operator=(const TileCache&) = delete;

  int64_t count() const { return count_; }
  int size() const { return size_; }
  // size x size x 3 bytes of image i (zeros when it failed to decode).
  const uint8_t* tile(int64_t i) const { return tiles_ + static_cast<size_t>(i) * tile_bytes(); }
  // All tiles, contiguous: count x size x size x 3.
  const uint8_t* data() const { return tiles_; }
  bool decoded(int64_t i) const { return status_[i] == 1; }
  int64_t failed() const;
  const std::string& path() const { return path_; }
  bool reused() const { return reused_; }
  size_t tile_bytes() const { return static_cast<size_t>(size_) * size_ * 3; }

  // Errors of the images that failed, as "path: reason", from the build (empty when reused).
  const std::vector<std::string>& errors() const { return errors_; }
  // A derived cache just built: the decoded tiles its transform left as they were.
  int64_t untransformed() const { return untransformed_; }

 private:
  TileCache() = default;
  bool map_existing(const std::string& path, uint64_t fingerprint, int64_t count, int size);

  std::string path_;
  int64_t count_ = 0;
  int size_ = 0;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  const uint8_t* status_ = nullptr;
  const uint8_t* tiles_ = nullptr;
  bool reused_ = false;
  std::vector<std::string> errors_;
  int64_t untransformed_ = 0;
};

// The longest side a tile may have: LC25000's are 768 px, tile sets run to 2048; an image above
// 4096 px is a slide or a scan of one, whose regions would be squeezed into one labelled tile.
constexpr int kMaxTileSide = 4096;

// Decodes one image file to a size x size RGB tile in `out`; false (with `error`) on failure,
// a slide-sized image (above kMaxTileSide) included.
bool decode_tile(const std::string& path, int size, uint8_t* out, std::string* error);

}  // namespace histotrain
