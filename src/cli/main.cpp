#include "cli/commands.h"
#include "util/allocator.h"

int main(int argc, char** argv) {
  histotrain::keep_freed_memory();
  return histotrain::run_cli(argc, argv);
}
