#include "leakage/near_copies.h"

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>

#include "util/errors.h"

namespace histotrain {

namespace {

constexpr int64_t kPairsPerChunk = 4096;   // bounds the memory of one scoring batch (~30 MB)
constexpr int64_t kQueriesPerChunk = 2048; // bounds one block of the distance matrix

// Angular spectra of the grey rings, [N, rings, angles / 2 + 1] complex: correlation over every
// rotation at once is a product of spectra and one inverse FFT.
torch::Tensor ring_spectra(const TileSignatures& s) { return torch::fft::rfft(s.rings, kSignatureAngles, 2); }

// Energy of each ring, [N, rings]: normalises a correlation over a subset of the rings.
torch::Tensor ring_energy(const TileSignatures& s) { return (s.rings * s.rings).sum(2); }

struct SignatureSet {
  torch::Tensor spectra, energy;
  explicit SignatureSet(const TileSignatures& s) : spectra(ring_spectra(s)), energy(ring_energy(s)) {}
};

// Best correlation over rotations, flips and zooms of the pairs (a[first[p]], b[second[p]]).
// A flip reverses the angle axis; the spectrum of a reversed real ring is the conjugate of its
// spectrum (up to a rotation, which the search covers anyway), so both flip states come from the
// same spectra. A zoom shifts the rings: compare ring i of one tile with ring i + shift of the other.
torch::Tensor score_pairs(const SignatureSet& a, const torch::Tensor& first, const SignatureSet& b,
                          const torch::Tensor& second, int max_zoom_rings) {
  const int64_t pairs = first.size(0);
  torch::Tensor scores = torch::empty({pairs});
  for (int64_t lo = 0; lo < pairs; lo += kPairsPerChunk) {
    const int64_t n_pairs = std::min(kPairsPerChunk, pairs - lo);
    const torch::Tensor ia = first.narrow(0, lo, n_pairs), ib = second.narrow(0, lo, n_pairs);
    const torch::Tensor fa = a.spectra.index_select(0, ia), fb = b.spectra.index_select(0, ib);
    const torch::Tensor ea = a.energy.index_select(0, ia), eb = b.energy.index_select(0, ib);
    torch::Tensor best = torch::full({n_pairs}, -1.0f);
    for (int shift = -max_zoom_rings; shift <= max_zoom_rings; ++shift) {
      const int64_t a0 = std::max(shift, 0), b0 = std::max(-shift, 0), rings = kSignatureRings - std::abs(shift);
      const torch::Tensor ra = fa.narrow(1, a0, rings), rb = fb.narrow(1, b0, rings);
      const torch::Tensor products = torch::stack({(ra * rb.conj()).sum(1), (ra * rb).sum(1)}, 1);
      // The inverse FFT of the spectra's product is the circular cross-correlation sum itself.
      const torch::Tensor norm =
          (ea.narrow(1, a0, rings).sum(1) * eb.narrow(1, b0, rings).sum(1)).sqrt().clamp_min(1e-6);
      const torch::Tensor correlation =
          torch::fft::irfft(products, kSignatureAngles, -1) / norm.view({-1, 1, 1});
      best = torch::maximum(best, correlation.amax({1, 2}));
    }
    scores.narrow(0, lo, n_pairs).copy_(best);
  }
  return scores;
}

// Descriptors scaled so that every dimension has unit spread over `basis` rows.
torch::Tensor standardised(const torch::Tensor& descriptor, const torch::Tensor& basis) {
  // The population spread: defined for a single row too.
  const torch::Tensor mean = basis.mean(0), spread = basis.std(0, /*unbiased=*/false) + 1e-6;
  return (descriptor - mean) / spread;
}

// For each query row, the indices of its k nearest reference rows (squared Euclidean distance);
// with `same_set` the query rows are the reference rows and a row is not its own neighbour.
torch::Tensor nearest_rows(const torch::Tensor& query, const torch::Tensor& reference, int k, bool same_set) {
  const int64_t available = reference.size(0) - (same_set ? 1 : 0);
  const int64_t take = std::min<int64_t>(k, available);
  if (take <= 0 || query.size(0) == 0) return torch::empty({query.size(0), 0}, torch::kLong);
  const torch::Tensor reference_sq = (reference * reference).sum(1);
  std::vector<torch::Tensor> blocks;
  for (int64_t lo = 0; lo < query.size(0); lo += kQueriesPerChunk) {
    const int64_t rows = std::min(kQueriesPerChunk, query.size(0) - lo);
    const torch::Tensor q = query.narrow(0, lo, rows);
    torch::Tensor distance = (q * q).sum(1, true) + reference_sq.unsqueeze(0) - 2 * torch::matmul(q, reference.t());
    if (same_set) {
      const torch::Tensor row = torch::arange(rows, torch::kLong);
      distance.index_put_({row, row + lo}, std::numeric_limits<float>::infinity());
    }
    blocks.push_back(std::get<1>(distance.topk(take, 1, /*largest=*/false)));
  }
  return torch::cat(blocks);
}

// Indices of the decodable tiles, per label.
std::map<int64_t, std::vector<int64_t>> tiles_by_label(const TileSignatures& s, const std::vector<int64_t>& labels) {
  if (static_cast<int64_t>(labels.size()) != s.size()) throw Error("near-copy search: one label per tile expected");
  std::map<int64_t, std::vector<int64_t>> by_label;
  for (int64_t i = 0; i < s.size(); ++i)
    if (s.ok[i]) by_label[labels[i]].push_back(i);
  return by_label;
}

torch::Tensor as_tensor(const std::vector<int64_t>& v) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {static_cast<int64_t>(v.size())}, torch::kLong).clone();
}

// Every candidate pair (i < j) among tiles of the same label, once.
std::vector<std::pair<int64_t, int64_t>> candidate_pairs(const TileSignatures& s, const std::vector<int64_t>& labels,
                                                         int neighbours) {
  const torch::Tensor descriptor = standardised(s.descriptor, s.descriptor);
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (const auto& [label, members] : tiles_by_label(s, labels)) {
    const torch::Tensor rows = descriptor.index_select(0, as_tensor(members));
    const torch::Tensor nearest = nearest_rows(rows, rows, neighbours, /*same_set=*/true);
    const auto* n = nearest.data_ptr<int64_t>();
    for (int64_t q = 0; q < nearest.size(0); ++q)
      for (int64_t c = 0; c < nearest.size(1); ++c) {
        const int64_t a = members[q], b = members[n[q * nearest.size(1) + c]];
        pairs.emplace_back(std::min(a, b), std::max(a, b));
      }
  }
  std::sort(pairs.begin(), pairs.end());
  pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
  return pairs;
}

struct UnionFind {
  std::vector<int64_t> parent;
  explicit UnionFind(int64_t n) : parent(static_cast<size_t>(n)) { std::iota(parent.begin(), parent.end(), 0); }
  int64_t find(int64_t a) {
    while (parent[a] != a) a = parent[a] = parent[parent[a]];
    return a;
  }
  void join(int64_t a, int64_t b) { parent[find(a)] = find(b); }
};

}  // namespace

torch::Tensor match_scores(const TileSignatures& a, const std::vector<int64_t>& first, const TileSignatures& b,
                           const std::vector<int64_t>& second, int max_zoom_rings) {
  if (first.size() != second.size()) throw Error("match_scores: pair lists differ in length");
  if (max_zoom_rings < 0 || max_zoom_rings >= kSignatureRings) throw Error("match_scores: zoom out of range");
  return score_pairs(SignatureSet(a), as_tensor(first), SignatureSet(b), as_tensor(second), max_zoom_rings);
}

NearCopyGroups find_near_copy_groups(const TileSignatures& signatures, const std::vector<int64_t>& labels,
                                     const NearCopyOptions& options) {
  const auto pairs = candidate_pairs(signatures, labels, options.neighbours);
  std::vector<int64_t> first, second;
  for (const auto& [a, b] : pairs) {
    first.push_back(a);
    second.push_back(b);
  }
  const SignatureSet set(signatures);
  const torch::Tensor scores = pairs.empty() ? torch::empty({0})
                                             : score_pairs(set, as_tensor(first), set, as_tensor(second),
                                                           options.max_zoom_rings);
  NearCopyGroups result;
  result.pairs_scored = static_cast<int64_t>(pairs.size());
  UnionFind components(signatures.size());
  const float* score = scores.data_ptr<float>();
  for (size_t p = 0; p < pairs.size(); ++p)
    if (score[p] >= options.threshold) {
      components.join(first[p], second[p]);
      ++result.links;
    }
  std::map<int64_t, int64_t> number_of_root;
  for (int64_t i = 0; i < signatures.size(); ++i) {
    auto [it, added] = number_of_root.emplace(components.find(i), result.groups);
    if (added) ++result.groups;
    result.group.push_back(it->second);
  }
  return result;
}

std::vector<NearestCopy> nearest_copies(const TileSignatures& query, const std::vector<int64_t>& query_labels,
                                        const TileSignatures& reference, const std::vector<int64_t>& reference_labels,
                                        const NearCopyOptions& options) {
  std::vector<NearestCopy> result(static_cast<size_t>(query.size()));
  // Both sets are standardised on the reference: the reference is the set being searched.
  const torch::Tensor query_descriptor = standardised(query.descriptor, reference.descriptor);
  const torch::Tensor reference_descriptor = standardised(reference.descriptor, reference.descriptor);
  const SignatureSet query_set(query), reference_set(reference);
  const auto reference_by_label = tiles_by_label(reference, reference_labels);
  for (const auto& [label, members] : tiles_by_label(query, query_labels)) {
    auto found = reference_by_label.find(label);
    if (found == reference_by_label.end()) continue;
    const std::vector<int64_t>& candidates = found->second;
    const torch::Tensor nearest =
        nearest_rows(query_descriptor.index_select(0, as_tensor(members)),
                     reference_descriptor.index_select(0, as_tensor(candidates)), options.neighbours, false);
    std::vector<int64_t> first, second;
    const auto* n = nearest.data_ptr<int64_t>();
    for (int64_t q = 0; q < nearest.size(0); ++q)
      for (int64_t c = 0; c < nearest.size(1); ++c) {
        first.push_back(members[q]);
        second.push_back(candidates[n[q * nearest.size(1) + c]]);
      }
    const torch::Tensor scores =
        score_pairs(query_set, as_tensor(first), reference_set, as_tensor(second), options.max_zoom_rings);
    const float* score = scores.data_ptr<float>();
    for (size_t p = 0; p < first.size(); ++p) {
      NearestCopy& best = result[first[p]];
      if (best.match < 0 || score[p] > best.score) best = {second[p], score[p]};
    }
  }
  return result;
}

}  // namespace histotrain
