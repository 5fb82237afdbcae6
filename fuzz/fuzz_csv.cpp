// libFuzzer target: any bytes as a CSV (groups files, the cached groups, manifests with a
// byte-order mark or CR-only line ends) and as a list file (--val-images, split lists), and any
// name's round trip through a list histotrain writes. Every input must parse into records or be refused with an Error:
// no crash, no read outside the input (built with ASan and UBSan), and what csv_field writes must
// read back as itself. Run with bench/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "util/csv.h"
#include "util/errors.h"
#include "util/files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    histotrain::parse_csv(text, "fuzz", 4096);
  } catch (const histotrain::Error&) {
  }
  // Any bytes written as one field come back as that field (blank records aside).
  const auto records = histotrain::parse_csv(histotrain::csv_field(text) + ",x\n", "fuzz", size + 16);
  if (records.size() != 1 || records[0].fields.size() != 2 || records[0].fields[0] != text) std::abort();

  static const std::string list = "/tmp/fuzz_csv." + std::to_string(::getpid()) + ".txt";
  std::FILE* f = std::fopen(list.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    histotrain::read_list_file(list);
  } catch (const histotrain::Error&) {
  }
  try {
    histotrain::parse_csv(histotrain::csv_text_for_reading(text, "fuzz"), "fuzz", 4096);
  } catch (const histotrain::Error&) {
  }
  // Any name written to a list as histotrain writes them reads back as itself.
  if (size > 0 && size < 4096 && text.find('\0') == std::string::npos) {
    f = std::fopen(list.c_str(), "wb");
    if (!f) std::abort();
    const std::string written = histotrain::list_file_text({text});
    std::fwrite(written.data(), 1, written.size(), f);
    std::fclose(f);
    const auto names = histotrain::read_list_file(list);
    if (names.size() != 1 || names[0] != text) std::abort();
  }
  return 0;
}
