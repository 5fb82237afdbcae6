// libFuzzer target: any bytes as a tile-cache file. The reader maps a cache only when it is a
// complete, intact (checksummed) cache of the expected shape; anything else must be refused
// without a crash or a read outside the file (built with ASan and UBSan). Run with bench/fuzz.sh;
// crashes it finds become regression tests in tests/test_tile_cache.cpp.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "data/tile_cache.h"

namespace {

const std::string& scratch_file() {
  static const std::string path = "/tmp/fuzz_tile_cache." + std::to_string(::getpid()) + ".tiles";
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(scratch_file().c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  // Expect the shape the header claims (fingerprint at byte 8, count at 16, tile side at 24), so
  // that inputs reach the size, flag and checksum checks rather than stopping at the first field.
  uint64_t fingerprint = 0;
  int64_t count = 0;
  int32_t side = 16;
  if (size >= 28) {
    std::memcpy(&fingerprint, data + 8, 8);
    std::memcpy(&count, data + 16, 8);
    std::memcpy(&side, data + 24, 4);
  }
  const auto cache = histotrain::TileCache::open_existing(scratch_file(), fingerprint, count, side);
  if (!cache) return 0;
  // Accepted: every status byte and every tile byte must be readable.
  uint64_t sum = 0;
  for (int64_t i = 0; i < cache->count(); ++i) {
    sum += cache->decoded(i);
    const uint8_t* tile = cache->tile(i);
    for (size_t b = 0; b < cache->tile_bytes(); ++b) sum += tile[b];
  }
  if (sum == 0xFFFFFFFFFFFFFFFFull) std::abort();  // keeps the reads from being optimised away
  return 0;
}
