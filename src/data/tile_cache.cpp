#include "data/tile_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include "data/decode.h"
#include "data/resize.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/progress.h"

namespace histotrain {

namespace {

// Version 2 added the checksum; version 3 decodes by content (a PNG named .jpeg was a failure in
// 2). An older file is rebuilt like any stale cache.
constexpr char kMagic[8] = {'H', 'T', 'T', 'I', 'L', 'E', 'S', '3'};

// On-disk layout: header, one status byte per image (1 decoded, 2 failed), padding to 4 KiB,
// then the tiles, count x size x size x 3 bytes.
struct Header {
  char magic[8];
  uint64_t fingerprint;
  int64_t count;
  int32_t size;
  int32_t complete;   // set last: a build killed half-way is never taken for a cache
  uint64_t checksum;  // of everything after the header: a damaged byte is found, not trained on
};

constexpr int64_t kMaxTiles = int64_t{1} << 32;

// The checksum of the status bytes and tiles, in 8 MiB chunks hashed in parallel and combined
// in order (the same value for any number of threads).
uint64_t payload_checksum(const uint8_t* payload, size_t bytes) {
  constexpr size_t kChunk = size_t{8} << 20;
  const size_t chunks = (bytes + kChunk - 1) / kChunk;
  std::vector<uint64_t> hashes(chunks);
  tbb::parallel_for(size_t{0}, chunks, [&](size_t c) {
    hashes[c] = fast_hash(payload + c * kChunk, std::min(kChunk, bytes - c * kChunk), c);
  });
  return fast_hash(hashes.data(), hashes.size() * sizeof(uint64_t), bytes);
}

// Removes what builds that were killed left behind (NAME.building<pid> of a process now gone).
void remove_abandoned_builds(const std::string& dir, const std::string& name) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    const std::string prefix = name + ".building";
    if (file.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(file.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) std::filesystem::remove(entry.path(), ec);
  }
}

size_t tiles_offset(int64_t count) {
  const size_t raw = sizeof(Header) + static_cast<size_t>(count);
  return (raw + 4095) / 4096 * 4096;
}

std::string cache_file_name(const ScanResult& scan, int size) {
  return cache_file_base(scan) + "-" + std::to_string(size) + "px.tiles";
}

}  // namespace

uint64_t scan_fingerprint(const ScanResult& scan, uint64_t salt) {
  Fnv1a h;
  h.add(salt);
  for (const auto& image : scan.images) {
    h.add(image.path);
    h.add(image.bytes);
    h.add(static_cast<uint64_t>(image.mtime_ns));
  }
  return h.value;
}

std::string cache_file_base(const ScanResult& scan) {
  Fnv1a h;
  h.add(scan.root);
  const std::string base = std::filesystem::path(scan.root).filename().string();
  return (base.empty() ? "data" : base) + "-" + hex64(h.value).substr(0, 12);
}

std::string default_cache_dir() {
  if (const char* dir = std::getenv("HISTOTRAIN_CACHE"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/histotrain";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/histotrain";
  return "/tmp/histotrain-cache";
}

bool decode_tile(const std::string& path, int size, uint8_t* out, std::string* error) {
  DecodeResult decoded = decode_image_file(path, size);
  if (decoded.ok && std::max(decoded.source_width, decoded.source_height) > kMaxTileSide) {
    decoded.ok = false;  // shrunk to one tile with one label, a slide's regions would be lost
    decoded.error = std::to_string(decoded.source_width) + " x " + std::to_string(decoded.source_height) +
                    " px is a slide-sized image, not a tile; cut tiles from it with `histotrain tile`, or "
                    "predict it with `histotrain predict --slide`";
  }
  if (!decoded.ok) {
    if (error) *error = decoded.error;
    return false;
  }
  resize_rgb(decoded.image, size, size, out);
  return true;
}

TileCache::~TileCache() {
  if (mapping_) ::munmap(mapping_, mapping_bytes_);
}

int64_t TileCache::failed() const {
  int64_t n = 0;
  for (int64_t i = 0; i < count_; ++i) n += status_[i] != 1;
  return n;
}

bool TileCache::map_existing(const std::string& path, uint64_t fingerprint, int64_t count, int size) {
  if (count < 0 || count > kMaxTiles || size < 8 || size > 4096) return false;  // sizes below cannot overflow
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  struct stat st {};
  const size_t expected = tiles_offset(count) + static_cast<size_t>(count) * size * size * 3;
  bool ok = ::fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) == expected;
  void* map = ok ? ::mmap(nullptr, expected, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  ::close(fd);
  if (map == MAP_FAILED) return false;
  const auto* header = static_cast<const Header*>(map);
  if (std::memcmp(header->magic, kMagic, sizeof kMagic) != 0 || header->fingerprint != fingerprint ||
      header->count != count || header->size != size || header->complete != 1) {
    ::munmap(map, expected);
    return false;
  }
  const auto* payload = static_cast<const uint8_t*>(map) + sizeof(Header);
  if (payload_checksum(payload, expected - sizeof(Header)) != header->checksum) {
    std::fprintf(stderr, "warning: tile cache %s is damaged (its checksum differs); it is rebuilt\n", path.c_str());
    ::munmap(map, expected);
    return false;
  }
  mapping_ = map;
  mapping_bytes_ = expected;
  path_ = path;
  count_ = count;
  size_ = size;
  status_ = static_cast<const uint8_t*>(map) + sizeof(Header);
  tiles_ = static_cast<const uint8_t*>(map) + tiles_offset(count);
  return true;
}

namespace {

// Fills tile i (size x size x 3 bytes at `out`); false, with `error`, when there is none.
using TileSource = std::function<bool(int64_t i, uint8_t* out, std::string* error)>;

// Writes every tile straight into a writable mapping of a temporary file, then renames it.
void build_cache_file(int64_t count, const TileSource& source, const std::string& what,
                      const TileCacheOptions& options, uint64_t fingerprint, const std::string& path,
                      std::vector<std::string>& errors) {
  const size_t tile_bytes = static_cast<size_t>(options.size) * options.size * 3;
  const size_t total = tiles_offset(count) + tile_bytes * count;
  const std::string tmp = path + ".building" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error("cannot create tile cache " + tmp + ": " + std::strerror(errno));
  // Reserve every block now: writing through the mapping into a full disk would kill the
  // process with SIGBUS half-way instead of failing here with a reason.
  if (const int error = ::posix_fallocate(fd, 0, static_cast<off_t>(total)); error != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error("cannot make the tile cache " + path + " (" + std::to_string((total >> 20) + 1) + " MiB): " +
                std::strerror(error) + "; free space there, or choose another folder with --cache-dir");
  }
  void* map = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw Error("cannot map tile cache " + tmp);
  auto* base = static_cast<uint8_t*>(map);
  auto* header = reinterpret_cast<Header*>(base);
  std::memcpy(header->magic, kMagic, sizeof kMagic);
  header->fingerprint = fingerprint;
  header->count = count;
  header->size = options.size;
  header->complete = 0;
  uint8_t* status = base + sizeof(Header);
  uint8_t* tiles = base + tiles_offset(count);

  const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, std::max(1, threads));
  Progress progress(what + " with " + std::to_string(threads) + " threads", count, "img", options.quiet);
  std::atomic<int64_t> done{0};
  std::mutex errors_mutex;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, 16), [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t i = range.begin(); i < range.end(); ++i) {
      std::string error;
      const bool ok = source(i, tiles + i * tile_bytes, &error);
      status[i] = ok ? 1 : 2;
      if (!ok) {
        std::lock_guard<std::mutex> lock(errors_mutex);
        errors.push_back(error);
      }
    }
    progress.update(done += static_cast<int64_t>(range.size()));
  });
  progress.finish();
  header->checksum = payload_checksum(base + sizeof(Header), total - sizeof(Header));
  ::msync(map, total, MS_SYNC);
  header->complete = 1;
  ::msync(map, sizeof(Header), MS_SYNC);
  ::munmap(map, total);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error("cannot move tile cache into place at " + path + ": " + ec.message());
  std::sort(errors.begin(), errors.end());
}

void ensure_cache_dir_writable(const std::string& dir) {
  try {
    ensure_writable_dir(dir);
  } catch (const Error& e) {
    throw Error(std::string("the tile cache must be built, but ") + e.what() +
                " (choose another --cache-dir, or $HISTOTRAIN_CACHE)");
  }
}

}  // namespace

std::shared_ptr<TileCache> TileCache::open_existing(const std::string& path, uint64_t fingerprint, int64_t count,
                                                    int size) {
  std::shared_ptr<TileCache> cache(new TileCache());
  if (!cache->map_existing(path, fingerprint, count, size)) return nullptr;
  cache->reused_ = true;
  return cache;
}

std::shared_ptr<TileCache> TileCache::open_or_build(const ScanResult& scan, const TileCacheOptions& options) {
  if (options.size < 8 || options.size > 4096) throw UsageError("image size must be between 8 and 4096 px");
  const std::string dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  const std::string path = dir + "/" + cache_file_name(scan, options.size);
  const uint64_t fingerprint = scan_fingerprint(scan, static_cast<uint64_t>(options.size));
  const auto count = static_cast<int64_t>(scan.images.size());

  // A valid cache is only read: it may sit in a read-only folder (a shared cache, a read-only
  // mount). Only building one needs the folder writable.
  std::shared_ptr<TileCache> cache(new TileCache());
  if (cache->map_existing(path, fingerprint, count, options.size)) {
    cache->reused_ = true;
    return cache;
  }
  ensure_cache_dir_writable(dir);
  remove_abandoned_builds(dir, cache_file_name(scan, options.size));
  const TileSource decode = [&](int64_t i, uint8_t* out, std::string* error) {
    if (decode_tile(scan.images[i].path, options.size, out, error)) return true;
    *error = scan.images[i].path + ": " + *error;
    return false;
  };
  build_cache_file(count, decode, "decoding " + std::to_string(count) + " images to " + std::to_string(options.size) + " px",
                   options, fingerprint, path, cache->errors_);
  if (!cache->map_existing(path, fingerprint, count, options.size))
    throw Error("tile cache " + path + " was written but cannot be read back");
  return cache;
}

std::shared_ptr<TileCache> TileCache::open_or_derive(const ScanResult& scan, const TileCache& source,
                                                     const TileTransform& transform, const TileCacheOptions& options) {
  const std::string dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  const std::string name = cache_file_base(scan) + "-" + std::to_string(source.size()) + "px-" + transform.name + "-" +
                           hex64(transform.key).substr(0, 12) + ".tiles";
  const std::string path = dir + "/" + name;
  Fnv1a h;
  h.add(scan_fingerprint(scan, static_cast<uint64_t>(source.size())));
  h.add(transform.key);
  const uint64_t fingerprint = h.value;
  std::shared_ptr<TileCache> cache(new TileCache());
  if (cache->map_existing(path, fingerprint, source.count(), source.size())) {
    cache->reused_ = true;
    return cache;
  }
  ensure_cache_dir_writable(dir);
  remove_abandoned_builds(dir, name);
  std::atomic<int64_t> untransformed{0};
  const int64_t pixels = int64_t{source.size()} * source.size();
  const TileSource derive = [&](int64_t i, uint8_t* out, std::string* error) {
    if (!source.decoded(i)) {
      *error = scan.images[i].path + ": not decoded";
      return false;
    }
    std::memcpy(out, source.tile(i), source.tile_bytes());
    if (!transform.apply(out, pixels)) ++untransformed;
    return true;
  };
  TileCacheOptions derived = options;
  derived.size = source.size();
  build_cache_file(source.count(), derive, transform.name + " of " + std::to_string(source.count()) + " tiles", derived,
                   fingerprint, path, cache->errors_);
  if (!cache->map_existing(path, fingerprint, source.count(), source.size()))
    throw Error("tile cache " + path + " was written but cannot be read back");
  cache->untransformed_ = untransformed;
  return cache;
}

}  // namespace histotrain
