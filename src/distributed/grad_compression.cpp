#include "distributed/grad_compression.h"

#include "util/errors.h"

#include <algorithm>

namespace histotrain {

std::optional<CompressionChoice> CompressionChoice::parse(std::string_view text) {
  const std::string_view kind = text.substr(0, text.find(':'));
  CompressionChoice c;
  if (kind == "none") c.kind = CompressionKind::none;
  else if (kind == "fp16") c.kind = CompressionKind::fp16;
  else if (kind == "bf16") c.kind = CompressionKind::bf16;
  else if (kind == "powersgd") c.kind = CompressionKind::powersgd;
  else return std::nullopt;
  if (text.find(':') == std::string_view::npos) return c;
  const std::string_view rank = text.substr(text.find(':') + 1);
  if (c.kind != CompressionKind::powersgd || rank.empty() || rank.size() > 2 ||
      rank.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  c.rank = std::stoi(std::string(rank));
  if (c.rank < 1 || c.rank > 64) return std::nullopt;
  return c;
}

std::string CompressionChoice::text() const {
  switch (kind) {
    case CompressionKind::none: return "none";
    case CompressionKind::fp16: return "fp16";
    case CompressionKind::bf16: return "bf16";
    case CompressionKind::powersgd: return "powersgd:" + std::to_string(rank);
  }
  return "";
}

GradCompression GradCompression::parse(const std::string& text, int64_t start_step) {
  if (start_step < 0) throw UsageError("--powersgd-start-step must be >= 0");
  const auto choice = CompressionChoice::parse(text);
  if (!choice)
    throw UsageError("--grad-compression must be none, fp16, bf16 or powersgd[:RANK] (RANK 1 to 64), not '" + text + "'");
  return {*choice, start_step};
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

bool sixteen_bit_by_gather(CompressionKind kind, const std::string& backend, int ranks) {
  // Gloo cannot sum bfloat16 (LibTorch 1.13), and sums float16 one element at a time in software,
  // slower than the bytes it saves on a fast link. Below 4 ranks an all-gather moves no more bytes
  // than a ring all-reduce, and the sum is then done by the receiver, in fp32 and vectorised.
  if (backend == "nccl") return false;
  return kind == CompressionKind::bf16 || (kind == CompressionKind::fp16 && ranks < 4);
}

bool powersgd_compresses(const std::vector<int64_t>& shape, int rank) {
  if (shape.size() < 2) return false;
  int64_t columns = 1;
  for (size_t d = 1; d < shape.size(); ++d) columns *= shape[d];
  const int64_t rows = shape[0];
  const int64_t r = std::min<int64_t>(rank, std::min(rows, columns));
  return (rows + columns) * r < rows * columns;
}

}  // namespace histotrain
