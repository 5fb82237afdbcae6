// Checks of the folder a run writes into (--out), before anything is written there.
#pragma once
#include <filesystem>

#include "train/config.h"

namespace histotrain {

// --out never overwrites another run: a new run needs a folder without one, and --resume writes
// into the run it continues or into a folder without a run.
void check_out_holds_no_other_run(const TrainConfig& c, const std::filesystem::path& out);

// A folder holding files named like a run's but no run is not histotrain's to write over.
void check_out_holds_no_stray_run_files(const std::filesystem::path& out);

// --out equal to the data root, or inside it, would mix the run's files with the tiles.
void check_out_is_outside_the_data(const TrainConfig& c, const std::filesystem::path& out);

}  // namespace histotrain
