// What --out may be: never another run, never files named like a run's but no run, never inside
// the data.
#include "train/out_folder.h"

#include <algorithm>

#include "core/checkpoint.h"
#include "train/trainer.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

namespace {

// Whether `dir` holds a run that has written results: a checkpoint or validation metrics. (A run
// stopped before its first checkpoint holds only its flags; --resume starts it again there.)
bool holds_a_run(const fs::path& dir) { return has_checkpoint(dir) || fs::exists(dir / "metrics.jsonl"); }

}  // namespace

// --out never overwrites another run: a new run needs a folder without one, and --resume writes
// into the run it continues or into a folder without a run.
void check_out_holds_no_other_run(const TrainConfig& c, const fs::path& out) {
  if (!holds_a_run(out)) return;
  if (c.job.resume.empty())
    throw Error("'" + out.string() + "' already holds a run; continue it with --resume " + out.string() +
                " or choose another --out");
  const fs::path from = run_folder(c.job.resume);
  std::error_code error;
  if (fs::equivalent(from, out, error)) return;
  throw Error("'" + out.string() + "' already holds another run; --resume " + c.job.resume +
              " writes into the run it continues (leave out --out) or into a folder without a run");
}

// A folder holding files named like a run's but no run is not histotrain's to write over: a run
// writes those names, and would replace whatever they are.
void check_out_holds_no_stray_run_files(const fs::path& out) {
  if (holds_a_run(out) || fs::exists(out / kRunConfigFile)) return;  // a run, perhaps before its first checkpoint
  for (const char* name : {"model.safetensors", "train_state.safetensors", "model.pt", "train_state.pt", "summary.json",
                           "train_images.txt", "val_images.txt", "previous"}) {
    std::error_code error;
    if (fs::symlink_status(out / name, error).type() == fs::file_type::not_found) continue;
    throw Error("'" + out.string() + "' holds " + name + " but no run: histotrain would write over it. Choose an "
                "empty or new folder for --out");
  }
}

// The run folder inside a data folder would mix its files with the tiles (and the next scan
// would take it for a class folder): --out equal to the data root, or to a folder inside it, is
// refused.
void check_out_is_outside_the_data(const TrainConfig& c, const fs::path& out) {
  std::error_code error;
  const fs::path real_out = fs::weakly_canonical(out, error);
  for (const std::string* root : {&c.data.root, &c.data.val_data, &c.data.manifest_root}) {
    if (root->empty()) continue;
    const fs::path real_root = fs::weakly_canonical(*root, error);
    if (error) continue;
    const auto mismatch = std::mismatch(real_root.begin(), real_root.end(), real_out.begin(), real_out.end());
    if (mismatch.first == real_root.end())
      throw UsageError("--out " + out.string() + " is inside the data folder " + *root +
                       ": the run's files would mix with the tiles. Choose a folder outside it");
  }
}

}  // namespace histotrain
