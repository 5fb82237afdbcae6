#include "distributed/scaling_model.h"

#include <algorithm>
#include <set>

#include "util/errors.h"

namespace histotrain {

LinkModel fit_link(const std::vector<AllReduceSample>& samples, int ranks) {
  if (ranks < 2) throw Error("a link is fitted from all-reduces among 2 or more ranks, not " + std::to_string(ranks));
  std::set<double> sizes;
  for (const auto& s : samples) sizes.insert(s.bytes);
  if (sizes.size() < 2) throw Error("fitting a link needs all-reduces of at least two sizes");
  // The slope by ordinary least squares, where the large all-reduces weigh most: the bandwidth.
  // The intercept as the median of what each sample leaves beyond the slope: the latency, robust
  // to the scatter of small messages (scheduling, a late rank), which would tilt a fitted line.
  double mean_x = 0, mean_y = 0;
  for (const auto& s : samples) {
    mean_x += s.bytes;
    mean_y += s.seconds;
  }
  mean_x /= static_cast<double>(samples.size());
  mean_y /= static_cast<double>(samples.size());
  double sxy = 0, sxx = 0;
  for (const auto& s : samples) {
    sxy += (s.bytes - mean_x) * (s.seconds - mean_y);
    sxx += (s.bytes - mean_x) * (s.bytes - mean_x);
  }
  const double slope = sxy / sxx;  // seconds per byte of the buffer
  if (!(slope > 0)) throw Error("the all-reduce time does not grow with its size: no bandwidth can be fitted");
  std::vector<double> left;
  for (const auto& s : samples) left.push_back(s.seconds - slope * s.bytes);
  std::sort(left.begin(), left.end());
  const double intercept = left[left.size() / 2];
  const double n = ranks;
  LinkModel link;
  link.alpha_s = std::max(0.0, intercept / (2 * (n - 1)));
  link.beta_s_per_byte = slope * n / (2 * (n - 1));
  return link;
}

double collective_seconds(const LinkModel& link, const Collective& c, int ranks) {
  if (ranks < 2) return 0;
  const double n = ranks;
  if (c.kind == CollectiveKind::all_gather) return (n - 1) * (link.alpha_s + link.beta_s_per_byte * c.bytes);
  return 2 * (n - 1) * (link.alpha_s + link.beta_s_per_byte * c.bytes / n);
}

std::vector<Collective> step_collectives(const StepProfile& profile, int ranks) {
  std::vector<Collective> out;
  const bool gather = sixteen_bit_by_gather(profile.compression, profile.backend, ranks);
  for (const auto& b : profile.buckets) {
    const bool sixteen_bit = b.bytes_per_value == 2;
    Collective c;
    c.kind = sixteen_bit && gather ? CollectiveKind::all_gather : CollectiveKind::all_reduce;
    c.bytes = static_cast<double>(b.values) * b.bytes_per_value;
    c.ready_share = std::clamp(b.ready_share, 0.0, 1.0);
    out.push_back(c);
  }
  const int groups = std::max(1, profile.powersgd_groups);
  for (const int64_t values : {profile.powersgd_p_values, profile.powersgd_q_values}) {
    if (values == 0) continue;
    for (int g = 0; g < groups; ++g) {  // the values split evenly: the groups are of about equal size
      Collective c;
      c.bytes = 4.0 * static_cast<double>(values) / groups;
      c.after_compression = true;
      out.push_back(c);
    }
  }
  return out;
}

ScalingPrediction predict_step(const StepProfile& profile, const LinkModel& link, int ranks) {
  ScalingPrediction p;
  p.ranks = ranks;
  double link_free = 0;  // seconds from backward's start
  for (const auto& c : step_collectives(profile, ranks)) {
    const double ready = c.after_compression ? profile.backward_s + profile.compression_s
                                             : c.ready_share * profile.backward_s;
    const double took = collective_seconds(link, c, ranks);
    link_free = std::max(link_free, ready) + took;
    p.link_busy_s += took;
  }
  p.post_s = ranks < 2 ? 0 : std::max(profile.compression_s, link_free - profile.backward_s);
  p.step_s = profile.compute_s + p.post_s;
  p.images_per_s = p.step_s > 0 ? ranks * static_cast<double>(profile.batch_per_rank) / p.step_s : 0;
  p.efficiency = p.step_s > 0 ? profile.compute_s / p.step_s : 0;
  p.comm_share = p.step_s > 0 ? p.post_s / p.step_s : 0;
  return p;
}

}  // namespace histotrain
