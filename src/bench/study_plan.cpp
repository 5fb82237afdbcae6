#include "bench/study_plan.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "model/resnet.h"
#include "util/errors.h"

namespace histotrain {

std::string StudyConfig::method() const {
  if (cuda) return "gpu";
  if (pipeline_stages > 1) return "pipeline";
  if (prefetch) return "prefetch";
  if (amp != AmpMode::none || channels_last) return "precision";
  if (ranks > 1) return "ranks";
  return "threads";
}

namespace {

StudyConfig cpu_config(const std::string& name, int ranks, int threads) {
  StudyConfig c;
  c.name = name;
  c.ranks = ranks;
  c.threads = threads;
  return c;
}

}  // namespace

StudyPlan default_plan(int cores, bool cuda) {
  StudyPlan plan;
  const std::string all = std::to_string(cores);
  plan.configs.push_back(cpu_config("serial", 1, 1));
  if (cores > 1) plan.configs.push_back(cpu_config("threads-" + all, 1, cores));
  for (int r = 2; r <= cores; r *= 2) plan.configs.push_back(cpu_config("ranks-" + std::to_string(r), r, 1));
  if (cores > 2 && (cores & (cores - 1)) != 0) plan.configs.push_back(cpu_config("ranks-" + all, cores, 1));
  if (cores >= 2) {
    StudyConfig pipeline = cpu_config("pipeline-2x4", 2, std::max(1, cores / 2));
    pipeline.pipeline_stages = 2;
    pipeline.micro_batches = 4;
    pipeline.peer = false;
    plan.configs.push_back(pipeline);
  }
  StudyConfig bf16 = cpu_config("bf16-cl-" + all, 1, cores);
  bf16.amp = AmpMode::bf16;
  bf16.channels_last = true;
  plan.configs.push_back(bf16);
  StudyConfig prefetch = cpu_config("prefetch-" + all, 1, cores);
  prefetch.prefetch = true;
  prefetch.peer = false;
  plan.configs.push_back(prefetch);
  if (cuda) {  // one GPU in fp32, bf16 and fp16 (with loss scaling), the last two channels-last
    for (const AmpMode amp : {AmpMode::none, AmpMode::bf16, AmpMode::fp16}) {
      const std::string name = amp == AmpMode::none ? "fp32" : spelling(amp) + std::string("-cl");
      StudyConfig gpu = cpu_config("cuda-" + name, 1, cores);
      gpu.cuda = true;
      gpu.amp = amp;
      gpu.channels_last = amp != AmpMode::none;
      plan.configs.push_back(gpu);
    }
  }
  plan.accuracy_configs = {cores > 1 ? "threads-" + std::to_string(cores) : "serial"};
  if (cores >= 2) plan.accuracy_configs.push_back("ranks-2");
  for (int w = 1; w <= cores; w *= 2) plan.decode_workers.push_back(w);
  if (plan.decode_workers.back() != cores) plan.decode_workers.push_back(cores);
  return plan;
}

namespace {

bool is_plain_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '+' || ch == '-';
  });
}

nlohmann::json config_json(const StudyConfig& c) {
  return {{"name", c.name},         {"ranks", c.ranks}, {"threads", c.threads}, {"device", c.device()},
          {"amp", spelling(c.amp)}, {"channels_last", c.channels_last},       {"pipeline_stages", c.pipeline_stages},
          {"micro_batches", c.micro_batches}, {"prefetch", c.prefetch},       {"peer", c.peer}};
}

// Reads `key` into `field` when present; a value of the wrong type is a usage error.
template <typename T>
void read_field(const nlohmann::json& j, const char* key, T& field, const std::string& where) {
  if (!j.contains(key)) return;
  try {
    j.at(key).get_to(field);
  } catch (const nlohmann::json::exception&) {
    throw UsageError("plan: " + where + "'" + key + "' has the wrong type: " + j.at(key).dump());
  }
}

void reject_unknown(const nlohmann::json& j, const std::set<std::string>& known, const std::string& where) {
  for (const auto& [key, value] : j.items())
    if (!known.count(key)) throw UsageError("plan: unknown field " + where + "'" + key + "'");
}

// The plan's "arch", parsed once here: the study passes the typed name on.
ArchName read_arch(const nlohmann::json& j) {
  std::string text = ArchName{}.text();
  read_field(j, "arch", text, "");
  if (auto arch = ArchName::parse(text)) return *arch;
  std::string names;
  for (const auto& name : supported_archs()) names += (names.empty() ? "" : ", ") + name;
  throw UsageError("plan: arch must be one of " + names + ", not " + nlohmann::json(text).dump());
}

StudyConfig study_config_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("name")) throw UsageError("plan: every configuration needs a \"name\"");
  reject_unknown(j, {"name", "ranks", "threads", "device", "amp", "channels_last", "pipeline_stages", "micro_batches",
                     "prefetch", "peer"}, "in a configuration: ");
  StudyConfig c;
  const std::string where = "configuration " + j.at("name").dump() + ": ";
#define READ(field) read_field(j, #field, c.field, where);
  READ(name) READ(ranks) READ(threads) READ(channels_last) READ(pipeline_stages) READ(micro_batches) READ(prefetch)
  READ(peer)
#undef READ
  std::string device = "cpu", amp = "none";  // typed here, where the plan's text enters
  read_field(j, "device", device, where);
  read_field(j, "amp", amp, where);
  // The name becomes part of run folders' and logs' names: a plain word, never a path.
  if (!is_plain_name(c.name))
    throw UsageError("plan: configuration name " + j.at("name").dump() +
                     " must be 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit");
  const auto amp_mode = from_spelling<AmpMode>(amp);
  if (!amp_mode) throw UsageError("plan: " + where + "amp must be none, bf16, fp16 or auto");
  c.amp = *amp_mode;
  if (c.ranks < 1 || c.threads < 1) throw UsageError("plan: " + where + "ranks and threads must be at least 1");
  if (device != "cpu" && device != "cuda") throw UsageError("plan: " + where + "device must be cpu or cuda");
  c.cuda = device == "cuda";
  if (c.pipeline_stages > 1 && c.pipeline_stages != c.ranks)
    throw UsageError("plan: " + where + "a pipeline needs one rank per stage (ranks == pipeline_stages)");
  return c;
}

}  // namespace

nlohmann::json to_json(const StudyPlan& p) {
  nlohmann::json configs = nlohmann::json::array();
  for (const auto& c : p.configs) configs.push_back(config_json(c));
  return {{"arch", p.arch.text()},
          {"image_size", p.image_size},
          {"global_batch", p.global_batch},
          {"steps", p.steps},
          {"repeats", p.repeats},
          {"configs", configs},
          {"accuracy_configs", p.accuracy_configs},
          {"accuracy_epochs", p.accuracy_epochs},
          {"target_acc", p.target_acc},
          {"decode_images", p.decode_images},
          {"decode_workers", p.decode_workers}};
}

constexpr size_t kMaxPlanConfigs = 256;

StudyPlan plan_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw UsageError("plan: expected a JSON object");
  reject_unknown(j, {"arch", "image_size", "global_batch", "steps", "repeats", "configs", "accuracy_configs",
                     "accuracy_epochs", "target_acc", "decode_images", "decode_workers"}, "");
  StudyPlan p;
#define READ(field) read_field(j, #field, p.field, "");
  READ(image_size) READ(global_batch) READ(steps) READ(repeats) READ(accuracy_configs)
  READ(accuracy_epochs) READ(target_acc) READ(decode_images) READ(decode_workers)
#undef READ
  p.arch = read_arch(j);
  if (j.contains("configs")) {
    if (!j.at("configs").is_array()) throw UsageError("plan: \"configs\" must be a list");
    if (j.at("configs").size() > kMaxPlanConfigs)
      throw UsageError("plan: at most " + std::to_string(kMaxPlanConfigs) + " configurations");
    for (const auto& c : j.at("configs")) p.configs.push_back(study_config_from_json(c));
  }
  if (p.configs.empty() || p.configs.front().name != "serial" || p.configs.front().workers() != 1 ||
      p.configs.front().cuda)
    throw UsageError("plan: the first configuration must be \"serial\" (1 rank, 1 thread, CPU): speedups are taken against it");
  std::set<std::string> names;
  for (const auto& c : p.configs)
    if (!names.insert(c.name).second) throw UsageError("plan: two configurations are named '" + c.name + "'");
  for (const auto& a : p.accuracy_configs)
    if (!names.count(a)) throw UsageError("plan: accuracy_configs names '" + a + "', which is not a configuration");
  // Bounded, so that a plan cannot ask for years of work (10^9 epochs gave an ETA of "-596523h").
  const auto in = [](int64_t v, int64_t low, int64_t high) { return v >= low && v <= high; };
  if (!in(p.steps, 1, 1000000) || !in(p.repeats, 1, 100) || !in(p.global_batch, 2, 65536) ||
      !in(p.image_size, 16, 1024) || !in(p.accuracy_epochs, 1, 10000) || !in(p.decode_images, 0, 10000000))
    throw UsageError("plan: steps must be from 1 to 10^6, repeats 1 to 100, global_batch 2 to 65536, image_size 16 to "
                     "1024, accuracy_epochs 1 to 10000, decode_images 0 to 10^7");
  if (p.configs.size() > kMaxPlanConfigs || p.decode_workers.size() > kMaxPlanConfigs)
    throw UsageError("plan: at most " + std::to_string(kMaxPlanConfigs) + " configurations and decode worker counts");
  if (!(p.target_acc > 0 && p.target_acc <= 1)) throw UsageError("plan: target_acc must be in (0, 1]");
  return p;
}

std::string infeasible_reason(const StudyConfig& c, const StudyPlan& plan, int cores, bool cuda) {
  if (c.cuda && !cuda) return "CUDA is not available here";
  if (!c.cuda && c.workers() > cores)
    return "needs " + std::to_string(c.workers()) + " cores, this machine has " + std::to_string(cores);
  if (plan.global_batch % c.ranks != 0 && c.pipeline_stages == 1)
    return "the global batch " + std::to_string(plan.global_batch) + " does not split over " + std::to_string(c.ranks) +
           " ranks";
  if (c.pipeline_stages > 1 && plan.global_batch % c.micro_batches != 0)
    return "the batch does not split into " + std::to_string(c.micro_batches) + " micro-batches";
  return "";
}

std::string peer_unsupported_reason(const StudyConfig& c) {
  if (!c.peer) return "not asked for";
  if (c.pipeline_stages > 1) return "the peer has no pipeline";
  if (c.prefetch) return "the peer's DataLoader always prefetches";
  return "";
}

}  // namespace histotrain
