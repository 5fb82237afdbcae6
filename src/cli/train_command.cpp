// histotrain train: training on one process, or one rank of a data-parallel job.
#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "train/trainer.h"
#include "util/json_text.h"

namespace histotrain {

namespace {

// The config fields the user set on this command line, by name ("--image-size" -> image_size).
nlohmann::json explicitly_given(const CLI::App& app, const TrainConfig& parsed) {
  const nlohmann::json all = to_json(parsed);
  nlohmann::json given = nlohmann::json::object();
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0 || option->get_lnames().empty()) continue;
    std::string key = option->get_lnames().front();
    std::replace(key.begin(), key.end(), '-', '_');
    if (all.contains(key) && key != "resume") given[key] = all[key];
    if (key == "split") given["data_split"] = all["data_split"];  // --split sets one of the two
  }
  return given;
}

void add_flags(CLI::App* app, TrainConfig& c) {
  app->add_option("--data", c.data, "Dataset root (class = folder directly holding the JPEGs)");
  app->add_option("--groups", c.groups, "CSV filename,label,group_id: splits keep each group on one side");
  app->add_option("--val-images", c.val_images,
                  "Validate on exactly these tiles (a list of paths or file names, one per line), train on the rest");
  app->add_option("--cache-dir", c.cache_dir, "Tile cache folder (default: $HISTOTRAIN_CACHE or ~/.cache/histotrain)");
  app->add_option("--image-size", c.image_size, "Tile side the model sees, px")->capture_default_str();
  app->add_option("--val-fraction", c.val_fraction, "Share of each class held out for validation")->capture_default_str();
  app->add_option("--workers", c.workers, "JPEG decode threads (0: all cores)")->capture_default_str();
  app->add_flag("--prefetch", c.prefetch, "Assemble the next batch on a second thread while a step runs");
  app->add_option("--arch", c.arch, "resnet18 | resnet34 | resnet50")->capture_default_str();
  app->add_option("--epochs", c.epochs, "Epochs")->capture_default_str();
  app->add_option("--batch-size", c.batch_size, "Images per optimizer step on each rank")->capture_default_str();
  app->add_option("--lr", c.lr, "Peak learning rate for one rank's batch")->capture_default_str();
  app->add_option("--schedule", c.schedule, "onecycle | cosine (after a linear warm-up)")->capture_default_str();
  app->add_option("--warmup-epochs", c.warmup_epochs, "Linear warm-up length")->capture_default_str();
  app->add_option("--momentum", c.momentum, "Nesterov momentum")->capture_default_str();
  app->add_option("--weight-decay", c.weight_decay, "On conv/linear weights only")->capture_default_str();
  app->add_option("--label-smoothing", c.label_smoothing, "Label smoothing")->capture_default_str();
  app->add_option("--amp", c.amp,
                  "Mixed precision: none | bf16 (CPU, CUDA) | fp16 (CUDA, loss scaling) | auto (the fastest here, "
                  "with or without channels-last: timed at the start, cached per machine)")
      ->capture_default_str();
  app->add_flag("--channels-last", c.channels_last,
                "Channels-last (NHWC) memory format for activations and weights (with --amp auto: always)");
  app->add_flag("--augment,!--no-augment", c.augment, "Random flips, 90-degree rotations and shifts (default on)");
  app->add_option("--max-shift", c.max_shift, "Largest shift, as a fraction of the tile side")->capture_default_str();
  app->add_option("--color-jitter", c.color_jitter,
                  "Per-image, per-channel gain and offset up to this much (stain variation between slides; 0: off)")
      ->capture_default_str();
  app->add_option("--backend", c.backend, "Data-parallel backend: gloo | nccl (default: nccl on CUDA, gloo on CPU)");
  app->add_option("--bucket-mb", c.bucket_mb, "Gradient all-reduce bucket size, MiB")->capture_default_str();
  app->add_option("--dist-timeout", c.dist_timeout, "Seconds before a silent rank fails the run")->capture_default_str();
  app->add_option("--lr-scaling", c.lr_scaling, "linear: peak lr x world size; none")->capture_default_str();
  app->add_option("--pipeline-stages", c.pipeline_stages, "Cut the model into K stages, one per rank (launch -n K)")
      ->capture_default_str();
  app->add_option("--micro-batches", c.micro_batches, "Micro-batches per batch in the pipeline")
      ->capture_default_str();
  app->add_option("--pipeline-schedule", c.pipeline_schedule,
                  "gpipe: every forward, then every backward; 1f1b: one forward, one backward (at most K "
                  "micro-batches' activations held)")
      ->capture_default_str();
  app->add_option("--virtual-stages", c.virtual_stages,
                  "Chunks per pipeline stage: rank s runs chunks s, s+K, ... (interleaved schedule, a smaller bubble)")
      ->capture_default_str();
  app->add_option("--devices", c.devices, "Stages on these devices in one process: cuda:0,cuda:1 (cpu,cpu to test)");
  // One flag, two meanings told apart by form, because both are what users of each feature expect.
  app->add_option_function<std::string>(
      "--split",
      [&c](const std::string& value) { (value == "group" || value == "random" ? c.data_split : c.split) = value; },
      "group (default): validation takes whole source groups; random: per image (near-copies leak, audited). "
      "With --pipeline-stages: the first unit of each later stage, e.g. 4,7");
  app->add_option("--threads", c.threads,
                  "Intra-op threads (0: $OMP_NUM_THREADS, else the cores shared among this node's ranks)")
      ->capture_default_str();
  app->add_option("--device", c.device, "cpu | cuda | cuda:N")->capture_default_str();
  app->add_option("--seed", c.seed, "Seed for weights, split, order and augmentation")->capture_default_str();
  app->add_option("--out", c.out, "Run folder (metrics.jsonl, summary.json, checkpoint)")->capture_default_str();
  app->add_option("--resume", c.resume, "Continue the run in this folder (its flags, plus any given again)");
  app->add_flag("--trust-checkpoint", c.trust_checkpoint,
                "Also resume from an older checkpoint's TorchScript train_state.pt, which can run code: only from a "
                "source you trust");
  app->add_option("--target-acc", c.target_acc, "Stop once validation accuracy reaches this (0..1)");
  app->add_option("--val-every", c.val_every,
                  "Validate and checkpoint every N epochs and after the last (short GPU runs: fewer pauses)")
      ->capture_default_str();
  app->add_option("--max-steps", c.max_steps, "Stop after this many optimizer steps (benchmarks)");
  app->add_option("--checkpoint-steps", c.checkpoint_steps,
                  "Also write a checkpoint every N steps inside an epoch (long epochs on preemptible nodes)")
      ->capture_default_str();
  app->add_flag("--deterministic", c.deterministic,
                "Deterministic kernels only: an interrupted and resumed run ends with the same weights, bit for bit");
  app->add_option("--ema", c.ema, "Validate and save a moving average of the weights with this decay (e.g. 0.99; 0: off)")
      ->capture_default_str();
  app->add_flag("--tta", c.tta, "Validate on the mean prediction over each tile's 8 flips and rotations");
  app->add_option("--cuda-graph", c.cuda_graph,
                  "auto | on | off: replay the train step as one CUDA graph (CUDA, LibTorch 2.x, one process)")
      ->capture_default_str();
  app->add_flag("--quiet", c.quiet, "No progress bars");
  add_max_image_pixels_flag(app);
}

}  // namespace

Command add_train_command(CLI::App& root) {
  auto parsed = std::make_shared<TrainConfig>();
  CLI::App* app = root.add_subcommand("train", "Train a ResNet on a folder of class folders");
  add_flags(app, *parsed);
  return {app, [app, parsed] {
            TrainConfig config =
                parsed->resume.empty() ? *parsed : resumed_config(parsed->resume, explicitly_given(*app, *parsed));
            config.trust_checkpoint = parsed->trust_checkpoint;
            const TrainOutcome outcome = train(config);
            if (outcome.stopped_by != 0) return 128 + outcome.stopped_by;  // the shell's convention for a signal
            if (!outcome.summary.is_null()) std::printf("%s\n", json_text(outcome.summary).c_str());  // rank 0 only
            return 0;
          }};
}

}  // namespace histotrain
