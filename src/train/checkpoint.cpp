#include "train/checkpoint.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include "compat.h"
#include "util/errors.h"
#include "util/files.h"

namespace histotrain {

std::filesystem::path run_folder(const std::string& checkpoint_arg) {
  std::filesystem::path p(checkpoint_arg);
  if (std::filesystem::is_regular_file(p)) return p.parent_path().empty() ? "." : p.parent_path();
  return p;
}

namespace {

const char* const kCheckpointFiles[] = {"model.pt", "train_state.pt", "checkpoint.json"};

// FNV-1a of bytes, as hex: what checkpoint.json records for each file.
std::string checksum(const void* data, size_t size) {
  Fnv1a hash;
  hash.add(data, size);
  return hex64(hash.value);
}

// The checksum of a file's bytes; "" when it cannot be read.
std::string file_checksum(const fs::path& path) {
  std::vector<uint8_t> bytes;
  if (!read_file_bytes(path, bytes)) return "";
  return checksum(bytes.data(), bytes.size());
}

// A new checkpoint is staged as NAME.next files beside the one in place. checkpoint.json.next,
// written last and whole, marks the stage complete; the renames that follow cannot fail for lack
// of space, and a run killed between two of them leaves a complete stage that the next save,
// load or resume finishes. A stage without checkpoint.json.next is a write that never finished.
fs::path staged(const fs::path& run, const char* name) { return run / (std::string(name) + ".next"); }

void finish_staged_checkpoint(const fs::path& run) {
  std::error_code ignored;  // a read-only folder: the checkpoint in place stays the one read
  const bool complete = fs::exists(staged(run, "checkpoint.json"));
  for (const char* name : kCheckpointFiles) {  // checkpoint.json last
    if (!fs::exists(staged(run, name))) continue;
    if (complete)
      fs::rename(staged(run, name), run / name, ignored);
    else
      fs::remove(staged(run, name), ignored);
  }
  if (complete) sync_to_disk(run);
}

// Serializes with `write` into memory, then writes the bytes to the staged path of `name`
// (flushed to disk) and returns their checksum. LibTorch's file writer cannot fail cleanly: on a
// full disk its destructor throws during unwinding and the process aborts, so it never touches
// the file system here.
std::string write_staged(const fs::path& run, const char* name, const std::function<void(std::ostream&)>& write) {
  std::ostringstream buffer;
  try {
    write(buffer);
  } catch (const c10::Error& e) {
    throw Error(std::string("serializing ") + name + " failed (" + e.what_without_backtrace() + ")");
  }
  const std::string bytes = buffer.str();
  write_file_atomically(staged(run, name), bytes);
  return checksum(bytes.data(), bytes.size());
}

// Why a write in `folder` may have failed, when the file system says: full, or read-only.
std::string storage_hint(const fs::path& folder) {
  struct statvfs fs_info {};
  if (::statvfs(folder.c_str(), &fs_info) != 0) return "";
  if (fs_info.f_flag & ST_RDONLY) return " (the file system is read-only)";
  const double free_mib = static_cast<double>(fs_info.f_bavail) * fs_info.f_frsize / (1 << 20);
  if (free_mib < 1024) {
    char text[96];
    std::snprintf(text, sizeof text, " (%.1f MiB free on that file system)", free_mib);
    return text;
  }
  return "";
}

std::string intact_checkpoint_note(const fs::path& run) {
  if (!fs::exists(run / "checkpoint.json")) return "";
  std::ifstream in(run / "checkpoint.json");
  const auto meta = nlohmann::json::parse(in, nullptr, false);
  if (meta.is_discarded()) return "";
  return "; the checkpoint already there (step " + std::to_string(meta.value("step", int64_t{0})) + ") is intact";
}

// The checkpoint in place becomes RUN/previous before a new one is written: whatever happens to
// the new one, the one before it survives. The files are hard links where the file system allows.
void keep_previous_checkpoint(const fs::path& run) {
  if (!fs::exists(run / "checkpoint.json")) return;
  const fs::path staging = run / "previous.tmp", previous = run / "previous";
  fs::remove_all(staging);
  fs::create_directories(staging);
  for (const char* name : kCheckpointFiles) {
    if (!fs::exists(run / name)) continue;
    std::error_code linked;
    fs::create_hard_link(run / name, staging / name, linked);
    if (linked) fs::copy_file(run / name, staging / name);
  }
  fs::remove_all(previous);
  fs::rename(staging, previous);
}

// Throws Error when `file` of the checkpoint in `run` does not hash to what checkpoint.json says.
void verify_checksum(const fs::path& run, const nlohmann::json& meta, const char* file) {
  if (!meta.contains("checksums")) return;  // written before checksums existed
  const std::string expected = meta.at("checksums").value(file, "");
  if (expected.empty() || file_checksum(run / file) == expected) return;
  std::string message = "checkpoint file " + (run / file).string() +
                        " is damaged or truncated (its checksum differs from checkpoint.json's)";
  if (fs::exists(run / "previous" / "checkpoint.json"))
    message += "; the checkpoint before it is intact in " + (run / "previous").string() + " (use it with --resume " +
               (run / "previous").string() + " --out NEW_FOLDER, or eval --checkpoint)";
  throw Error(message);
}

}  // namespace

void save_checkpoint(const std::filesystem::path& run, ResNet& model, const torch::optim::Optimizer& optimizer,
                     const GradScaler& scaler, const nlohmann::json& meta_in, ResNet* average) {
  try {
    finish_staged_checkpoint(run);
    keep_previous_checkpoint(run);
    nlohmann::json meta = meta_in;
    meta["checksums"]["model.pt"] =
        write_staged(run, "model.pt", [&](std::ostream& out) { torch::save(average ? *average : model, out); });
    meta["checksums"]["train_state.pt"] = write_staged(run, "train_state.pt", [&](std::ostream& out) {
      torch::serialize::OutputArchive archive;
      torch::serialize::OutputArchive model_archive;
      model->save(model_archive);
      archive.write("model", model_archive);
      if (average) {
        torch::serialize::OutputArchive average_archive;
        (*average)->save(average_archive);
        archive.write("average", average_archive);
      }
      torch::serialize::OutputArchive optimizer_archive;
      optimizer.save(optimizer_archive);
      archive.write("optimizer", optimizer_archive);
      archive.write("rng", compat::cpu_rng_state());
      scaler.save(archive);
      archive.write("step", torch::tensor(meta_in.at("step").get<int64_t>()));
      archive.save_to(out);
    });
    // checkpoint.json, written last and whole, vouches for the two files by their checksums; its
    // staged copy existing is what makes the new checkpoint complete.
    write_file_atomically(staged(run, "checkpoint.json"), meta.dump(2) + "\n");
  } catch (const std::exception& e) {
    const std::string message = "cannot write a checkpoint to " + run.string() + ": " + e.what() + storage_hint(run) +
                                intact_checkpoint_note(run);  // the hint sees the disk as the write left it
    std::error_code ignored;
    for (const char* name : kCheckpointFiles) fs::remove(staged(run, name), ignored);
    throw Error(message);
  }
  finish_staged_checkpoint(run);  // renames only: no space needed
}

bool has_checkpoint(const std::filesystem::path& run) {
  return fs::exists(run / "checkpoint.json") || fs::exists(staged(run, "checkpoint.json"));
}

nlohmann::json read_checkpoint_meta(const std::filesystem::path& run) {
  finish_staged_checkpoint(run);  // a save that a killed run left between its renames
  const auto path = run / "checkpoint.json";
  std::ifstream in(path);
  if (!in) throw Error("no checkpoint at '" + run.string() + "' (expected " + path.string() + ", written by histotrain train)");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error("checkpoint " + path.string() + " is damaged: " + e.what());
  }
}

ResNet load_model(const std::filesystem::path& run, const nlohmann::json& meta) {
  ResNet model(meta.at("arch").get<std::string>(), static_cast<int64_t>(meta.at("classes").size()));
  const auto path = run / "model.pt";
  if (!std::filesystem::exists(path)) throw Error("checkpoint '" + run.string() + "' has no model.pt");
  verify_checksum(run, meta, "model.pt");
  try {
    torch::load(model, path.string());
  } catch (const c10::Error& e) {
    throw Error("cannot load " + path.string() + ": " + e.what_without_backtrace());
  }
  return model;
}

TrainedModel open_trained_model(const std::string& checkpoint_arg, torch::Device device, const std::string& amp) {
  TrainedModel trained;
  trained.run = run_folder(checkpoint_arg);
  const nlohmann::json meta = read_checkpoint_meta(trained.run);
  trained.classes = meta.at("classes").get<std::vector<std::string>>();
  trained.image_size = meta.at("image_size").get<int>();
  const nlohmann::json config = meta.value("config", nlohmann::json::object());
  trained.precision = parse_precision(amp.empty() ? config.value("amp", std::string("none")) : amp);
  if (amp.empty() && trained.precision == Precision::fp16 && !device.is_cuda())
    trained.precision = Precision::fp32;  // trained in fp16 on a GPU, used on a CPU: fp32 is exact enough
  check_precision_supported(trained.precision, device);
  trained.channels_last = config.value("channels_last", false);
  trained.model = load_model(trained.run, meta);
  trained.model->to(device);
  if (trained.channels_last) to_channels_last(*trained.model);
  trained.model->eval();
  return trained;
}

bool load_training_state(const std::filesystem::path& run, ResNet& model, torch::optim::Optimizer& optimizer,
                         GradScaler& scaler, int64_t step, ResNet* average) {
  const auto path = run / "train_state.pt";
  if (!std::filesystem::exists(path)) throw Error("checkpoint '" + run.string() + "' has no train_state.pt");
  verify_checksum(run, read_checkpoint_meta(run), "train_state.pt");
  torch::serialize::InputArchive archive;
  archive.load_from(path.string());
  torch::Tensor saved_step, rng;
  archive.read("step", saved_step);
  if (saved_step.item<int64_t>() != step)
    throw Error("checkpoint '" + run.string() + "' is inconsistent (train_state.pt is from step " +
                std::to_string(saved_step.item<int64_t>()) + ", checkpoint.json from step " + std::to_string(step) + ")");
  torch::serialize::InputArchive model_archive;
  archive.read("model", model_archive);
  model->load(model_archive);
  torch::serialize::InputArchive average_archive;
  const bool has_average = average && archive.try_read("average", average_archive);
  if (has_average) (*average)->load(average_archive);
  torch::serialize::InputArchive optimizer_archive;
  archive.read("optimizer", optimizer_archive);
  optimizer.load(optimizer_archive);
  scaler.load(archive);
  archive.read("rng", rng);
  compat::set_cpu_rng_state(rng);
  return has_average;
}

}  // namespace histotrain
