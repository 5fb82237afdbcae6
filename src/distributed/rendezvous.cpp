#include "distributed/rendezvous.h"

#include <cstdlib>

#include "util/errors.h"

namespace histotrain {

namespace {

int parse_int(const EnvLookup& env, const char* name, int min_value) {
  const char* text = env(name);
  if (!text || !*text) throw UsageError(std::string(name) + " is not set");
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < min_value || value > 1'000'000)
    throw UsageError(std::string(name) + "='" + text + "' is not a valid number (at least " +
                     std::to_string(min_value) + ")");
  return static_cast<int>(value);
}

// The leading number of a variable like SLURM_STEP_TASKS_PER_NODE ("2(x3),1" -> 2); 1 if unset.
int leading_int(const EnvLookup& env, const char* name) {
  const char* text = env(name);
  const int value = text ? std::atoi(text) : 0;
  return value > 0 ? value : 1;
}

bool is_set(const EnvLookup& env, const char* name) {
  const char* text = env(name);
  return text && *text;
}

std::string text_or(const EnvLookup& env, const char* name, const std::string& fallback) {
  return is_set(env, name) ? std::string(env(name)) : fallback;
}

void check_rank(const WorldInfo& w, const std::string& source) {
  if (w.rank >= w.world_size)
    throw UsageError(source + ": rank " + std::to_string(w.rank) + " is not below the world size " +
                     std::to_string(w.world_size));
  if (w.master_port < 1 || w.master_port > 65535)
    throw UsageError(source + ": master port " + std::to_string(w.master_port) + " is out of range");
}

WorldInfo from_torchrun(const EnvLookup& env) {
  WorldInfo w;
  w.launcher = "torchrun";
  w.rank = parse_int(env, "RANK", 0);
  w.world_size = parse_int(env, "WORLD_SIZE", 1);
  w.local_rank = is_set(env, "LOCAL_RANK") ? parse_int(env, "LOCAL_RANK", 0) : 0;
  w.local_world_size = leading_int(env, "LOCAL_WORLD_SIZE");
  w.master_addr = text_or(env, "MASTER_ADDR", "127.0.0.1");
  w.master_port = is_set(env, "MASTER_PORT") ? parse_int(env, "MASTER_PORT", 1) : 29500;
  w.store_file = text_or(env, "HISTOTRAIN_STORE_FILE", "");
  return w;
}

WorldInfo from_slurm(const EnvLookup& env) {
  WorldInfo w;
  w.launcher = "slurm";
  w.rank = parse_int(env, "SLURM_PROCID", 0);
  w.world_size = parse_int(env, "SLURM_STEP_NUM_TASKS", 1);
  w.local_rank = is_set(env, "SLURM_LOCALID") ? parse_int(env, "SLURM_LOCALID", 0) : 0;
  w.local_world_size = leading_int(env, "SLURM_STEP_TASKS_PER_NODE");
  const std::string nodes = text_or(env, "SLURM_STEP_NODELIST", text_or(env, "SLURM_JOB_NODELIST", ""));
  if (is_set(env, "MASTER_ADDR"))
    w.master_addr = env("MASTER_ADDR");
  else if (!nodes.empty())
    w.master_addr = first_slurm_host(nodes);
  if (is_set(env, "MASTER_PORT"))
    w.master_port = parse_int(env, "MASTER_PORT", 1);
  else if (is_set(env, "SLURM_JOB_ID"))
    w.master_port = 20000 + parse_int(env, "SLURM_JOB_ID", 0) % 20000;
  return w;
}

WorldInfo from_openmpi(const EnvLookup& env) {
  WorldInfo w;
  w.launcher = "openmpi";
  w.rank = parse_int(env, "OMPI_COMM_WORLD_RANK", 0);
  w.world_size = parse_int(env, "OMPI_COMM_WORLD_SIZE", 1);
  w.local_rank = is_set(env, "OMPI_COMM_WORLD_LOCAL_RANK") ? parse_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0) : 0;
  w.local_world_size = leading_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE");
  const bool all_local = is_set(env, "OMPI_COMM_WORLD_LOCAL_SIZE") && w.local_world_size == w.world_size;
  if (is_set(env, "MASTER_ADDR"))
    w.master_addr = env("MASTER_ADDR");
  else if (!all_local && w.world_size > 1)
    throw UsageError("OpenMPI job over several hosts: set MASTER_ADDR to the host of rank 0 (mpirun -x MASTER_ADDR=...)");
  w.master_port = is_set(env, "MASTER_PORT") ? parse_int(env, "MASTER_PORT", 1) : 29500;
  return w;
}

}  // namespace

std::string WorldInfo::describe() const {
  return "rank " + std::to_string(rank) + " of " + std::to_string(world_size) + " (local " + std::to_string(local_rank) +
         "), master " + master_addr + ":" + std::to_string(master_port) + ", from " + launcher;
}

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at the first comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < nodelist.size(); ++end) {
    if (nodelist[end] == '[') ++depth;
    if (nodelist[end] == ']') --depth;
    if (nodelist[end] == ',' && depth == 0) break;
  }
  const std::string first = nodelist.substr(0, end);
  const size_t open = first.find('[');
  if (open == std::string::npos) return first;
  // "gpu[07-09,12]": the prefix plus the first number of the range, zero padding kept.
  const size_t stop = first.find_first_of(",-]", open + 1);
  if (stop == std::string::npos) throw UsageError("cannot read the Slurm node list '" + nodelist + "'");
  return first.substr(0, open) + first.substr(open + 1, stop - open - 1);
}

WorldInfo world_from_environment(const EnvLookup& env) {
  WorldInfo w;
  if (is_set(env, "RANK") || is_set(env, "WORLD_SIZE"))
    w = from_torchrun(env);
  else if (is_set(env, "SLURM_PROCID") && is_set(env, "SLURM_STEP_NUM_TASKS"))
    w = from_slurm(env);
  else if (is_set(env, "OMPI_COMM_WORLD_RANK"))
    w = from_openmpi(env);
  else
    return w;
  check_rank(w, w.launcher);
  return w;
}

WorldInfo world_from_environment() {
  return world_from_environment([](const char* name) { return static_cast<const char*>(std::getenv(name)); });
}

}  // namespace histotrain
