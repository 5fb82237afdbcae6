#include "core/checkpoint.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/compat.h"
#include "model/safetensors.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/json_file.h"
#include "util/json_text.h"

namespace histotrain {

std::filesystem::path run_folder(const std::string& checkpoint_arg) {
  std::filesystem::path p(checkpoint_arg);
  if (std::filesystem::is_regular_file(p)) return p.parent_path().empty() ? "." : p.parent_path();
  return p;
}

namespace {

// checkpoint.json last: it vouches for the others. The .pt files of older versions are kept with
// a checkpoint (previous/, staging) but no longer written.
const char* const kCheckpointFiles[] = {"model.safetensors", "train_state.safetensors", "model.pt", "train_state.pt",
                                        "checkpoint.json"};

// checkpoint.json is a few kilobytes; a weights file of the largest ResNet with its optimizer
// state is under a gigabyte.
constexpr uint64_t kMaxMetaBytes = uint64_t{16} << 20;
constexpr uint64_t kMaxWeightsBytes = uint64_t{4} << 30;

const char* const kTrustHint =
    " A TorchScript archive is a program: loading one can run code it carries. Load it only if you trust where it "
    "came from, with --trust-checkpoint.";

// FNV-1a of bytes, as hex: what checkpoint.json records for each file.
std::string checksum(const void* data, size_t size) {
  Fnv1a hash;
  hash.add(data, size);
  return hex64(hash.value);
}

// The checksum of a file's bytes, read in chunks; throws Error for a file that is not a regular
// file or is larger than any checkpoint file (a FIFO or a sparse giant is refused, not read).
std::string file_checksum(const fs::path& path) { return hex64(file_fnv1a(path, kMaxWeightsBytes)); }

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
  nlohmann::json meta;
  try {
    meta = parse_json_or_null(read_regular_file(run / "checkpoint.json", kMaxMetaBytes));
  } catch (const Error&) {
    return "";
  }
  if (!meta.is_object()) return "";
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

// Throws Error when `file` of the checkpoint in `run` does not hash to what checkpoint.json says,
// or checkpoint.json names no checksum for it (an edited or foreign checkpoint.json).
void verify_checksum(const fs::path& run, const nlohmann::json& meta, const char* file) {
  const auto checksums = meta.find("checksums");
  const bool listed = checksums != meta.end() && checksums->is_object() && checksums->contains(file) &&
                      checksums->at(file).is_string();
  if (!listed)
    throw Error("checkpoint " + (run / "checkpoint.json").string() + " has no checksum for " + file +
                ": it was edited or not written by histotrain, and is not loaded");
  if (file_checksum(run / file) == checksums->at(file).get<std::string>()) return;
  std::string message = "checkpoint file " + (run / file).string() +
                        " is damaged or truncated (its checksum differs from checkpoint.json's)";
  if (fs::exists(run / "previous" / "checkpoint.json"))
    message += "; the checkpoint before it is intact in " + (run / "previous").string() + " (use it with --resume " +
               (run / "previous").string() + " --out NEW_FOLDER, or eval --checkpoint)";
  throw Error(message);
}

// The checksum checkpoint.json in place records for `file`, when that file is there and still
// matches it; "" otherwise (no checkpoint yet, or a file that must be written again).
std::string current_checksum(const fs::path& run, const char* file) {
  if (!fs::exists(run / "checkpoint.json") || !fs::exists(run / file)) return "";
  nlohmann::json meta;
  try {
    meta = parse_json_or_null(read_regular_file(run / "checkpoint.json", kMaxMetaBytes));
  } catch (const Error&) {
    return "";
  }
  if (!meta.is_object() || !meta.contains("checksums") || !meta["checksums"].is_object())
    return "";
  const auto& recorded = meta["checksums"].value(file, nlohmann::json());
  try {
    if (!recorded.is_string() || file_checksum(run / file) != recorded.get<std::string>()) return "";
  } catch (const Error&) {
    return "";
  }
  return recorded.get<std::string>();
}

// The optimizer's momentum buffers as "optimizer.GROUP.INDEX.momentum_buffer".
std::string momentum_name(size_t group, size_t index) {
  return "optimizer." + std::to_string(group) + "." + std::to_string(index) + ".momentum_buffer";
}

void add_optimizer_tensors(torch::optim::SGD& optimizer, NamedTensors& tensors) {
  auto& state = optimizer.state();
  const auto& groups = optimizer.param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t i = 0; i < groups[g].params().size(); ++i) {
      const auto found = state.find(compat::optimizer_state_key(state, groups[g].params()[i]));
      if (found == state.end()) continue;  // no step taken yet: SGD starts the buffer then
      tensors.emplace_back(momentum_name(g, i),
                           static_cast<const torch::optim::SGDParamState&>(*found->second).momentum_buffer());
    }
}

void load_optimizer_tensors(torch::optim::SGD& optimizer, const Safetensors& file, const std::string& source) {
  auto& state = optimizer.state();
  const auto& groups = optimizer.param_groups();
  size_t loaded = 0;
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t i = 0; i < groups[g].params().size(); ++i) {
      const auto found = file.tensors.find(momentum_name(g, i));
      if (found == file.tensors.end()) continue;
      const torch::Tensor& p = groups[g].params()[i];
      if (found->second.sizes() != p.sizes() || found->second.scalar_type() != p.scalar_type())
        throw Error(source + ": " + found->first + " does not fit its parameter (another model?)");
      auto buffer = std::make_unique<torch::optim::SGDParamState>();
      buffer->momentum_buffer(torch::empty_like(p, torch::MemoryFormat::Preserve).copy_(found->second));
      state[compat::optimizer_state_key(state, p)] = std::move(buffer);
      ++loaded;
    }
  size_t stored = 0;
  for (const auto& item : file.tensors) stored += item.first.rfind("optimizer.", 0) == 0;
  if (stored != loaded) throw Error(source + " holds optimizer state for parameters this model does not have");
}

// A 0-dim tensor `name` of `file` as a number; throws Error when there is none.
template <typename T>
T scalar(const Safetensors& file, const std::string& name, const std::string& source) {
  const auto found = file.tensors.find(name);
  if (found == file.tensors.end() || found->second.numel() != 1) throw Error(source + " has no '" + name + "'");
  return found->second.item<T>();
}

void write_train_state(std::ostream& out, ResNet& model, torch::optim::SGD& optimizer, const GradScaler& scaler,
                       int64_t step, ResNet* average, const NamedTensors& reducer_state) {
  NamedTensors tensors = module_tensors(*model, "model.");
  if (average)
    for (auto& named : module_tensors(**average, "average.")) tensors.push_back(std::move(named));
  add_optimizer_tensors(optimizer, tensors);
  tensors.emplace_back("rng", compat::cpu_rng_state());
  tensors.emplace_back("scaler.scale", torch::tensor(scaler.scale(), torch::kFloat64));
  tensors.emplace_back("scaler.growth_tracker", torch::tensor(scaler.growth_tracker(), torch::kInt64));
  tensors.emplace_back("step", torch::tensor(step, torch::kInt64));
  for (const auto& [name, tensor] : reducer_state) tensors.emplace_back("reducer." + name, tensor);
  out << safetensors_bytes(tensors, {{"format", "histotrain-train-state"}});
}

// train_state.pt of checkpoints written before safetensors: a TorchScript archive.
bool load_legacy_training_state(const fs::path& path, ResNet& model, torch::optim::Optimizer& optimizer,
                                GradScaler& scaler, int64_t step, ResNet* average) {
  torch::serialize::InputArchive archive;
  archive.load_from(path.string());
  torch::Tensor saved_step, rng, scale, tracker;
  archive.read("step", saved_step);
  if (saved_step.item<int64_t>() != step)
    throw Error("checkpoint '" + path.parent_path().string() + "' is inconsistent (train_state.pt is from step " +
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
  if (archive.try_read("scaler_scale", scale) && archive.try_read("scaler_growth_tracker", tracker))
    scaler.restore(scale.item<double>(), tracker.item<int64_t>());
  archive.read("rng", rng);
  compat::set_cpu_rng_state(rng);
  return has_average;
}

// The fields every reader of checkpoint.json relies on, checked once: an edited file is an Error
// naming the field, never a JSON exception or a model of a made-up size.
void check_meta_fields(const nlohmann::json& meta, const fs::path& path) {
  auto bad = [&](const std::string& why) { return Error("checkpoint " + path.string() + " is damaged: " + why); };
  if (!meta.is_object()) throw bad("not a JSON object");
  const auto& archs = supported_archs();
  if (!meta.contains("arch") || !meta["arch"].is_string() ||
      std::find(archs.begin(), archs.end(), meta["arch"].get<std::string>()) == archs.end())
    throw bad("'arch' is not one of the supported architectures");
  const auto classes = meta.find("classes");
  if (classes == meta.end() || !classes->is_array() || classes->empty() || classes->size() > 100000 ||
      !std::all_of(classes->begin(), classes->end(), [](const nlohmann::json& c) { return c.is_string(); }))
    throw bad("'classes' is not a list of 1 to 100000 names");
  const auto size = meta.find("image_size");
  if (size == meta.end() || !size->is_number_integer() || size->get<int64_t>() < 8 || size->get<int64_t>() > 8192)
    throw bad("'image_size' is not a whole number from 8 to 8192");
  for (const char* key : {"epoch", "step"})
    if (!meta.contains(key) || !meta[key].is_number_integer() || meta[key].get<int64_t>() < 0)
      throw bad(std::string("'") + key + "' is not a whole number >= 0");
  if (meta.contains("config") && !meta["config"].is_object()) throw bad("'config' is not an object");
  if (meta.contains("calibration")) {
    const auto& calibration = meta["calibration"];
    if (!calibration.is_object() || !calibration.contains("temperature") || !calibration["temperature"].is_number() ||
        !(calibration["temperature"].get<double>() >= 0.05 && calibration["temperature"].get<double>() <= 20))
      throw bad("'calibration' has no temperature from 0.05 to 20");
  }
  if (meta.contains("input_mpp") &&
      !(meta["input_mpp"].is_number() && meta["input_mpp"].get<double>() > 0 && meta["input_mpp"].get<double>() <= 1000))
    throw bad("'input_mpp' is not a number of microns above 0 and at most 1000");
  if (meta.contains("normalization")) {
    const auto& n = meta["normalization"];
    auto three = [&](const char* key, double low, double high) {
      if (!n.is_object() || !n.contains(key) || !n[key].is_array() || n[key].size() != 3) return false;
      return std::all_of(n[key].begin(), n[key].end(), [&](const nlohmann::json& v) {
        return v.is_number() && v.get<double>() >= low && v.get<double>() <= high;
      });
    };
    if (!three("mean", -1, 2) || !three("std", 1e-4, 10))
      throw bad("'normalization' is not a mean in [-1, 2] and a std in [1e-4, 10] for each of 3 channels");
  }
}

}  // namespace

void save_checkpoint(const std::filesystem::path& run, ResNet& model, torch::optim::SGD& optimizer,
                     const GradScaler& scaler, const nlohmann::json& meta_in, ResNet* average,
                     const NamedTensors& reducer_state, bool new_weights) {
  try {
    finish_staged_checkpoint(run);
    keep_previous_checkpoint(run);
    nlohmann::json meta = meta_in;
    ResNet& validated = average ? *average : model;
    const std::string kept_checksum = new_weights ? "" : current_checksum(run, "model.safetensors");
    if (kept_checksum.empty())
      meta["checksums"]["model.safetensors"] = write_staged(run, "model.safetensors", [&](std::ostream& out) {
        out << safetensors_bytes(module_tensors(*validated), {{"format", "pt"}});
      });
    else
      meta["checksums"]["model.safetensors"] = kept_checksum;
    meta["checksums"]["train_state.safetensors"] = write_staged(run, "train_state.safetensors", [&](std::ostream& out) {
      write_train_state(out, model, optimizer, scaler, meta_in.at("step").get<int64_t>(), average, reducer_state);
    });
    // checkpoint.json, written last and whole, vouches for the files by their checksums; its
    // staged copy existing is what makes the new checkpoint complete.
    write_file_atomically(staged(run, "checkpoint.json"), json_text(meta, 2) + "\n");
    // A run resumed from a checkpoint of an older version: its .pt files are not this one's.
    std::error_code ignored;
    fs::remove(run / "train_state.pt", ignored);
    fs::remove(run / "model.pt", ignored);
  } catch (const std::exception& e) {
    const std::string message = "cannot write a checkpoint to " + run.string() + ": " + e.what() + storage_hint(run) +
                                intact_checkpoint_note(run);  // the hint sees the disk as the write left it
    std::error_code ignored;
    for (const char* name : kCheckpointFiles) fs::remove(staged(run, name), ignored);
    throw Error(message);
  }
  finish_staged_checkpoint(run);  // renames only: no space needed
}

void finish_run_folder(const std::filesystem::path& run) {
  const nlohmann::json meta = read_checkpoint_meta(run);
  for (const auto& [file, sum] : meta["checksums"].items())
    if (fs::exists(run / file)) verify_checksum(run, meta, file.c_str());  // throws before previous/ goes
  std::error_code ignored;
  fs::remove_all(run / "previous", ignored);
}

bool has_checkpoint(const std::filesystem::path& run) {
  return fs::exists(run / "checkpoint.json") || fs::exists(staged(run, "checkpoint.json"));
}

nlohmann::json read_checkpoint_meta(const std::filesystem::path& run) {
  finish_staged_checkpoint(run);  // a save that a killed run left between its renames
  const auto path = run / "checkpoint.json";
  if (!fs::exists(path))
    throw Error("no checkpoint at '" + run.string() + "' (expected " + path.string() + ", written by histotrain train)");
  const auto meta = parse_json_or_null(read_regular_file(path, kMaxMetaBytes));
  if (meta.is_null()) throw Error("checkpoint " + path.string() + " is damaged: it is not JSON (or nests too deep)");
  check_meta_fields(meta, path);
  return meta;
}

ResNet load_model(const std::filesystem::path& run, const nlohmann::json& meta, bool trust_torchscript) {
  ResNet model(meta.at("arch").get<std::string>(), static_cast<int64_t>(meta.at("classes").size()));
  const auto weights = run / "model.safetensors", archive = run / "model.pt";
  if (fs::exists(weights)) {
    verify_checksum(run, meta, "model.safetensors");
    load_module_tensors(*model, read_safetensors(weights, kMaxWeightsBytes), weights.string());
    return model;
  }
  if (!fs::exists(archive)) throw Error("checkpoint '" + run.string() + "' has no model.safetensors");
  if (!trust_torchscript)
    throw Error("checkpoint '" + run.string() + "' has only model.pt (written by an older histotrain, or by hand)." +
                kTrustHint);
  verify_checksum(run, meta, "model.pt");
  try {
    torch::load(model, archive.string());
  } catch (const c10::Error& e) {
    throw Error("cannot load " + archive.string() + ": " + e.what_without_backtrace());
  }
  return model;
}

bool load_training_state(const std::filesystem::path& run, ResNet& model, torch::optim::SGD& optimizer,
                         GradScaler& scaler, int64_t step, ResNet* average, bool trust_torchscript,
                         NamedTensors* reducer_state) {
  const nlohmann::json meta = read_checkpoint_meta(run);
  const auto path = run / "train_state.safetensors", legacy = run / "train_state.pt";
  if (!fs::exists(path)) {
    if (!fs::exists(legacy)) throw Error("checkpoint '" + run.string() + "' has no train_state.safetensors");
    if (!trust_torchscript)
      throw Error("checkpoint '" + run.string() + "' has only train_state.pt (written by an older histotrain)." +
                  kTrustHint);
    verify_checksum(run, meta, "train_state.pt");
    return load_legacy_training_state(legacy, model, optimizer, scaler, step, average);
  }
  verify_checksum(run, meta, "train_state.safetensors");
  const std::string source = path.string();
  const Safetensors state = read_safetensors(path, kMaxWeightsBytes);
  const int64_t saved_step = scalar<int64_t>(state, "step", source);
  if (saved_step != step)
    throw Error("checkpoint '" + run.string() + "' is inconsistent (train_state.safetensors is from step " +
                std::to_string(saved_step) + ", checkpoint.json from step " + std::to_string(step) + ")");
  Safetensors model_part, average_part;  // each module checked against its own prefix only
  for (const auto& [name, tensor] : state.tensors) {
    if (name.rfind("model.", 0) == 0) model_part.tensors.emplace(name, tensor);
    if (name.rfind("average.", 0) == 0) average_part.tensors.emplace(name, tensor);
  }
  load_module_tensors(*model, model_part, source, "model.");
  const bool has_average = average && !average_part.tensors.empty();
  if (has_average) load_module_tensors(**average, average_part, source, "average.");
  load_optimizer_tensors(optimizer, state, source);
  scaler.restore(scalar<double>(state, "scaler.scale", source), scalar<int64_t>(state, "scaler.growth_tracker", source));
  const auto rng = state.tensors.find("rng");
  if (rng == state.tensors.end() || rng->second.scalar_type() != torch::kUInt8 ||
      rng->second.sizes() != compat::cpu_rng_state().sizes())
    throw Error(source + " has no random-number state of this LibTorch's size");
  compat::set_cpu_rng_state(rng->second);
  if (reducer_state)
    for (const auto& [name, tensor] : state.tensors)
      if (name.rfind("reducer.", 0) == 0) reducer_state->emplace_back(name.substr(8), tensor);
  return has_average;
}

}  // namespace histotrain
