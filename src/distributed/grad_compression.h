// How gradients travel between data-parallel ranks (train --grad-compression). Between CPU
// nodes on Ethernet the all-reduce of ResNet-18's 11.2 M fp32 gradients (45 MB a step) can take
// longer than the step's computation; compressing them trades a little accuracy per step for
// much less traffic:
//   fp16      each bucket pre-divided by the world size (so the sum cannot overflow), cast to
//             half precision, all-reduced, cast back: half the bytes
//   bf16      the same in bfloat16 (fp32's range, 8 bits of mantissa), no pre-division needed
//   On Gloo both travel by all-gather and are summed in fp32 here, in rank order: Gloo in
//   LibTorch 1.13 cannot sum bfloat16 and sums float16 one element at a time in software. The
//   gather sends no more bytes than a ring all-reduce below 4 ranks; from 4 ranks on fp16 is
//   all-reduced (bf16 is still gathered, and sends more bytes than fp32 there)
//   powersgd  rank-R approximations of each matrix-shaped gradient (Vogels et al., NeurIPS 2019;
//             distributed/power_sgd.h), with error feedback; biases and BatchNorm parameters, and every
//             gradient for the first `start_step` steps, travel uncompressed
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace histotrain {

enum class CompressionKind { none, fp16, bf16, powersgd };

// --grad-compression: what travels ("none" | "fp16" | "bf16" | "powersgd" | "powersgd:RANK", RANK
// 1 to 64), parsed once where the text enters (util/text_form.h).
struct CompressionChoice {
  CompressionKind kind = CompressionKind::none;
  int rank = 4;  // PowerSGD's rank

  static std::optional<CompressionChoice> parse(std::string_view text);
  std::string text() const;  // what parse reads back: "powersgd:4"
  static const char* example() { return "powersgd:8"; }
};

struct GradCompression {
  CompressionKind kind = CompressionKind::none;
  int rank = 4;             // PowerSGD's rank ("powersgd:RANK")
  int64_t start_step = 10;  // PowerSGD: optimizer steps with uncompressed gradients first

  GradCompression() = default;
  GradCompression(const CompressionChoice& choice, int64_t start_step)
      : kind(choice.kind), rank(choice.rank), start_step(start_step) {}
  // The text of CompressionChoice; throws UsageError for another text or a negative start step.
  static GradCompression parse(const std::string& text, int64_t start_step);
  std::string name() const { return CompressionChoice{kind, rank}.text(); }  // "powersgd:4"
  std::string describe() const;  // for the log: "PowerSGD rank 4 (uncompressed for the first 10 steps)"
};

// Whether 16-bit buckets travel by all-gather (summed by the receiver in fp32) rather than by
// all-reduce, on `backend` with `ranks` ranks (see above). The reducer and the scaling model ask
// the same question.
bool sixteen_bit_by_gather(CompressionKind kind, const std::string& backend, int ranks);

// Whether PowerSGD compresses a parameter of this shape: a matrix (2 or more dimensions, rows =
// the first) whose rank-R factors hold fewer values than itself.
bool powersgd_compresses(const std::vector<int64_t>& shape, int rank);

}  // namespace histotrain
