// Which tiles of a run's data train and which validate, and the lists of both in the run folder.
#pragma once
#include <string>

#include "train/run.h"

namespace histotrain {

// The dataset's own split (a manifest's split column, or --val-data) where it has one; else the
// tiles --val-images names; else a split by source group (--split group) or per image.
Split make_split(const TileDataset& data, const TrainConfig& c);

// A per-image split puts near-copies of one source on both sides, and validation then partly
// measures memory: measured and logged; the report is kept in the summary (RunData::split_audit).
nlohmann::json audit_random_split(const TileDataset& tiles, const Split& split, const TrainConfig& c,
                                  const RunWorld& world);

// train_images.txt and val_images.txt (rank 0): what `split-audit` and later evaluations take.
void write_split_lists(const TileDataset& tiles, const Split& split, const RunWorld& world);

// How the split was made, for the log: "per source group, seed 1", "as listed in val.txt", ...
std::string split_origin(const TileDataset& tiles, const TrainConfig& c);

}  // namespace histotrain
