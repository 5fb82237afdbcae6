#include "util/allocator.h"

#include <malloc.h>

#include <climits>
#include <cstdint>

#ifdef __SANITIZE_ADDRESS__
// From the sanitizer runtime's allocator interface; GCC ships no header that declares it.
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

#ifdef HISTOTRAIN_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>

// Read by jemalloc when it starts, before main(): freed pages are never purged (given back to
// the kernel), so the next step reuses them without faults. Memory use stays at its peak, which
// is what a training process needs anyway.
extern "C" {
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1";
}
#endif

namespace histotrain {

void keep_freed_memory() {
#ifndef HISTOTRAIN_WITH_JEMALLOC
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's ceiling; larger blocks are still mapped each time
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

std::string allocator_name() {
#ifdef HISTOTRAIN_WITH_JEMALLOC
  const char* version = nullptr;
  size_t size = sizeof version;
  if (mallctl("version", &version, &size, nullptr, 0) == 0 && version) {
    const std::string full = version;  // "5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c"
    return "jemalloc " + full.substr(0, full.find('-'));
  }
  return "jemalloc";
#else
  return "glibc malloc";
#endif
}

size_t allocated_bytes() {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer replaces malloc: glibc's arenas are never set up, and mallinfo2() walking
  // them from several threads at once crashes.
  return __sanitizer_get_current_allocated_bytes();
#elif defined(HISTOTRAIN_WITH_JEMALLOC)
  uint64_t epoch = 1;  // jemalloc's statistics are refreshed when the epoch is advanced
  size_t size = sizeof epoch;
  mallctl("epoch", &epoch, &size, &epoch, size);
  size_t allocated = 0;
  size = sizeof allocated;
  return mallctl("stats.allocated", &allocated, &size, nullptr, 0) == 0 ? allocated : 0;
#else
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;  // in-use heap blocks, and mapped ones
#endif
}

}  // namespace histotrain
