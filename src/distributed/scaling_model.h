// How a data-parallel step would scale to N ranks on a given link, from what can be measured on
// two: a rank's compute time, when each gradient bucket can leave during backward (the reducer
// records it), what each step sends, the compression's own arithmetic, and the link's latency and
// bandwidth (link-bench). For choosing link speeds and compression before booking a cluster;
// every figure it gives is a prediction and is labelled so.
//
// The step's timeline, per rank:
//   backward runs for backward_s; bucket k can start at ready_share_k x backward_s, and the
//   compressed factors (PowerSGD) once backward and the compression's arithmetic are done;
//   the link carries one collective at a time (queued in start order), each taking the ring
//   algorithm's time on N ranks (Thakur, Rabenseifner and Gropp 2005):
//     all-reduce of b bytes: 2(N-1) (alpha + beta b / N);   all-gather of b per rank: (N-1) (alpha + beta b);
//   after backward the rank does the compression's arithmetic, and waits for the link:
//     post = max(compression_s, link done - backward_s),   step = compute_s + post.
// Efficiency is compute_s / step: against the same rank alone at the same batch per rank.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "distributed/grad_compression.h"

namespace histotrain {

// A link as a ring sees it: alpha seconds per message (latency and per-message overhead) and
// beta seconds per byte (1 / bandwidth).
struct LinkModel {
  double alpha_s = 0;
  double beta_s_per_byte = 0;
};

struct AllReduceSample {
  double bytes = 0;
  double seconds = 0;
};

// alpha and beta from all-reduces of several sizes among `ranks` (>= 2) ranks, for
// t = 2(N-1) alpha + 2(N-1)/N beta bytes: the slope by least squares, the intercept as the median
// residual (a negative one gives alpha 0). Throws Error with fewer than two distinct sizes, or
// when the time does not grow with the size.
LinkModel fit_link(const std::vector<AllReduceSample>& samples, int ranks);

enum class CollectiveKind { all_reduce, all_gather };

struct Collective {
  CollectiveKind kind = CollectiveKind::all_reduce;
  double bytes = 0;            // all-reduce: the buffer; all-gather: each rank's part
  double ready_share = 1;      // of backward, when it can start; 1: after backward
  bool after_compression = false;  // waits for the compression's arithmetic (PowerSGD's factors)
};

double collective_seconds(const LinkModel& link, const Collective& c, int ranks);

// One rank's step as measured, and what its reducer sends each step.
struct StepProfile {
  double compute_s = 0;      // a step without communication: batch, forward, backward, update
  double backward_s = 0;     // inside compute_s: the window in which buckets leave
  double compression_s = 0;  // the compression's own arithmetic per step
  int64_t batch_per_rank = 0;
  CompressionKind compression = CompressionKind::none;
  std::string backend = "gloo";
  struct Bucket {
    int64_t values = 0;
    int bytes_per_value = 4;
    double ready_share = 1;
  };
  std::vector<Bucket> buckets;               // in the order they start
  // PowerSGD's factors (fp32): each group's Ps, then each group's Qs, after its arithmetic
  int64_t powersgd_p_values = 0, powersgd_q_values = 0;
  int powersgd_groups = 1;
};

// The collectives of one step on `ranks` ranks (16-bit buckets by all-gather or all-reduce as the
// reducer would choose there).
std::vector<Collective> step_collectives(const StepProfile& profile, int ranks);

struct ScalingPrediction {
  int ranks = 0;
  double link_busy_s = 0;  // the collectives' time on the link, summed
  double post_s = 0;       // after backward: the compression's arithmetic and the wait for the link
  double step_s = 0;
  double images_per_s = 0;
  double efficiency = 0;      // compute_s / step_s
  double comm_share = 0;      // post_s / step_s
};

ScalingPrediction predict_step(const StepProfile& profile, const LinkModel& link, int ranks);

}  // namespace histotrain
