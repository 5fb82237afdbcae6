// Who this process is in a data-parallel job, read from the environment that launchers set:
// torchrun (and `histotrain launch`), Slurm's srun, or OpenMPI's mpirun.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace histotrain {

struct WorldInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // picks the GPU on a multi-GPU node
  int local_world_size = 1;  // ranks on this node: they share its cores
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // torchrun | slurm | openmpi | none
  // HISTOTRAIN_STORE_FILE: ranks on one host meet through this file (a c10d FileStore in a folder
  // only the user can read) instead of a TCP port. `histotrain launch` sets it.
  std::string store_file;

  bool distributed() const { return world_size > 1; }
  std::string describe() const;  // "rank 1 of 4 (local 1), master 10.0.0.5:29500, from slurm"
};

// Reads an environment variable; nullptr when unset. Tests pass their own.
using EnvLookup = std::function<const char*(const char*)>;

// torchrun's RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT first, then srun's
// SLURM_PROCID/SLURM_STEP_NUM_TASKS/SLURM_LOCALID (only srun sets the step's task count, so a
// plain `histotrain train` in a batch script stays one process; master: the first host of the
// step's node list; port:
// MASTER_PORT, else 20000 + SLURM_JOB_ID % 20000 so that jobs sharing a node differ), then
// OpenMPI's OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK (master: MASTER_ADDR, else this host when every
// rank is local). Nothing set: a single process. Malformed values throw UsageError.
WorldInfo world_from_environment(const EnvLookup& env);
WorldInfo world_from_environment();

// The first host named by a Slurm node list: "gpu[07-09,12],cpu3" -> "gpu07".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace histotrain
