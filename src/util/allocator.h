// The memory allocator's settings for training. Every step allocates and frees the same large
// activation and gradient buffers. Left to its defaults, glibc gives buffers above its mmap
// threshold back to the kernel on free and trims its heap, so the next step takes page faults to
// get them again, tens of thousands a step (measured: docs/benchmarks.md). jemalloc with purging
// off, or glibc with a raised threshold and no trim, keeps them.
#pragma once
#include <cstddef>
#include <string>

namespace histotrain {

// Called first in main(). With jemalloc linked (HISTOTRAIN_JEMALLOC) its settings are compiled
// in and this does nothing; with glibc it raises the mmap threshold to its maximum (32 MiB) and
// turns heap trimming off.
void keep_freed_memory();

// "jemalloc 5.3.0" or "glibc malloc": for the version line and summaries.
std::string allocator_name();

// Bytes the program holds now (allocated, not yet freed), by the allocator's own count: what a
// schedule's activations add, without the pages the allocator keeps for reuse (which RSS counts).
// Takes a few microseconds.
size_t allocated_bytes();

}  // namespace histotrain
