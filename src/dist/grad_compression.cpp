#include "dist/grad_compression.h"

#include "util/errors.h"

namespace histotrain {

GradCompression GradCompression::parse(const std::string& text, int64_t start_step) {
  GradCompression c;
  c.start_step = start_step;
  if (start_step < 0) throw UsageError("--powersgd-start-step must be >= 0");
  const std::string kind = text.substr(0, text.find(':'));
  if (kind == "none") c.kind = CompressionKind::none;
  else if (kind == "fp16") c.kind = CompressionKind::fp16;
  else if (kind == "bf16") c.kind = CompressionKind::bf16;
  else if (kind == "powersgd") c.kind = CompressionKind::powersgd;
  else throw UsageError("--grad-compression must be none, fp16, bf16 or powersgd[:RANK], not '" + text + "'");
  if (text.find(':') == std::string::npos) return c;
  const std::string rank = text.substr(text.find(':') + 1);
  if (c.kind != CompressionKind::powersgd || rank.empty() || rank.size() > 2 ||
      rank.find_first_not_of("0123456789") != std::string::npos || std::stoi(rank) < 1 || std::stoi(rank) > 64)
    throw UsageError("--grad-compression powersgd:RANK takes a rank from 1 to 64, not '" + text + "'");
  c.rank = std::stoi(rank);
  return c;
}

std::string GradCompression::describe() const {
  switch (kind) {
    case CompressionKind::none: return "none (fp32)";
    case CompressionKind::fp16: return "fp16 (pre-divided by the world size)";
    case CompressionKind::bf16: return "bf16";
    case CompressionKind::powersgd:
      return "PowerSGD rank " + std::to_string(rank) + " with error feedback (uncompressed for the first " +
             std::to_string(start_step) + " steps)";
  }
  return "";
}

}  // namespace histotrain
