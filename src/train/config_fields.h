// The table of every training flag: for each field of TrainConfig (config.h), its name in
// checkpoint.json, its flag and its help. The command line (cli/train_command.cpp), the saved
// configuration, --resume and the ranks' agreement check (config.cpp) all walk this one table, so
// a flag cannot be missing from the saved configuration. A test (test_config.cpp) counts each
// group's members against its rows, and sends every flag through checkpoint.json and --resume.
//
// A visitor is called as visit(const FieldInfo&, field) for each row, with the field as a
// reference into the (possibly const) configuration.
#pragma once
#include "train/config.h"

namespace histotrain {

struct FieldInfo {
  const char* key;   // in checkpoint.json, summary.json and run_config.json
  const char* flag;  // CLI11 names, e.g. "--augment,!--no-augment"
  const char* help;
  bool per_node = false;  // may differ between ranks (paths, threads, output): not compared
};

template <class Data, class Visit>
void data_fields(Data& d, Visit&& visit) {
  visit(FieldInfo{"data", "--data", "Dataset root (class = folder directly holding the images)", true}, d.root);
  visit(FieldInfo{"manifest", "--manifest",
                  "Instead of --data: a CSV with columns path,label and optionally group and split "
                  "(train/val/test: the dataset's own partition); relative paths from --root, absolute ones as given",
                  true},
        d.manifest);
  visit(FieldInfo{"manifest_columns", "--columns",
                  "The manifest's own column names, e.g. path=filename,label=diagnosis,group=patient_id"},
        d.manifest_columns);
  visit(FieldInfo{"manifest_root", "--root", "The folder the manifest's relative paths start from (default: its own)",
                  true},
        d.manifest_root);
  visit(FieldInfo{"val_data", "--val-data",
                  "A second folder of class folders to validate on (a dataset's own validation or test set); "
                  "--data is then all training",
                  true},
        d.val_data);
  visit(FieldInfo{"groups", "--groups",
                  "CSV filename,label,group_id (or a manifest's path,label,group): splits keep each group on one side",
                  true},
        d.groups);
  visit(FieldInfo{"data_split", "--split",
                  "group: validation takes whole source groups; random: per image (near-copies leak, audited)"},
        d.split);
  visit(FieldInfo{"val_images", "--val-images",
                  "Validate on exactly these tiles (a list of paths or file names, one per line), train on the rest "
                  "(--groups then names the groups of the validation's confidence intervals)"},
        d.val_images);
  visit(FieldInfo{"cache_dir", "--cache-dir", "Tile cache folder (default: $HISTOTRAIN_CACHE or ~/.cache/histotrain)",
                  true},
        d.cache_dir);
  visit(FieldInfo{"image_size", "--image-size", "Tile side the model sees, px"}, d.image_size);
  visit(FieldInfo{"progressive_from", "--progressive-from",
                  "Progressive resizing: train the first steps at this side, growing to --image-size in 16 px "
                  "steps (0: off; the batches are averaged down from the --image-size cache)"},
        d.progressive_from);
  visit(FieldInfo{"progressive_until", "--progressive-until",
                  "Share of training (of the steps, or of --time-budget) after which the side is --image-size"},
        d.progressive_until);
  visit(FieldInfo{"val_fraction", "--val-fraction", "Share of each class held out for validation"}, d.val_fraction);
  visit(FieldInfo{"workers", "--workers", "Image decode threads (0: all cores)", true}, d.workers);
  visit(FieldInfo{"prefetch", "--prefetch", "Assemble the next batch on a second thread while a step runs"},
        d.prefetch);
  visit(FieldInfo{"augment", "--augment,!--no-augment", "Random flips, 90-degree rotations and shifts (default on)"},
        d.augment);
  visit(FieldInfo{"max_shift", "--max-shift", "Largest shift, as a fraction of the tile side"}, d.max_shift);
  visit(FieldInfo{"color_jitter", "--color-jitter",
                  "Per-image, per-channel gain and offset up to this much (stain variation between slides; 0: off)"},
        d.color_jitter);
  visit(FieldInfo{"normalize", "--normalize",
                  "Input normalisation: imagenet (ImageNet's channel mean and deviation, what pretrained ResNets "
                  "expect) | dataset (the training tiles' own, measured at the start); eval and predict use the same"},
        d.normalize);
  visit(FieldInfo{"stain_augment", "--stain-augment",
                  "none | hed[:SIGMA]: per image, the haematoxylin, eosin and residual concentrations (Ruifrok & "
                  "Johnston's colour deconvolution) scaled by U(1-SIGMA, 1+SIGMA) and shifted by U(-SIGMA, SIGMA) "
                  "optical density; SIGMA 0.05 by default"},
        d.stain_augment);
  visit(FieldInfo{"mixup", "--mixup",
                  "Mixup: each batch blended with itself reversed, lambda ~ Beta(A, A), the targets likewise (0: off; "
                  "timm's default 0.8)"},
        d.mixup);
  visit(FieldInfo{"cutmix", "--cutmix",
                  "CutMix: a box of the reversed batch pasted into each image, its area 1 - lambda with lambda ~ "
                  "Beta(A, A), the targets by area (0: off; timm's default 1.0); with --mixup, one of the two per batch"},
        d.cutmix);
  visit(FieldInfo{"mix_prob", "--mix-prob", "Share of batches that --mixup or --cutmix mixes"}, d.mix_prob);
  visit(FieldInfo{"stain_normalize", "--stain-normalize",
                  "none | macenko | reinhard: bring every tile to --stain-reference's stains before the model sees "
                  "it (training tiles once into the tile cache); eval, predict and slides do the same"},
        d.stain_normalize);
  visit(FieldInfo{"stain_reference", "--stain-reference",
                  "The stains to normalise to: an image file (one tile of the wanted look) or 'train' (fitted on the "
                  "training tiles, glass left out)",
                  true},
        d.stain_reference);
}

template <class Model, class Visit>
void model_fields(Model& m, Visit&& visit) {
  visit(FieldInfo{"arch", "--arch", "resnet10 | resnet18 | resnet34 | resnet50 (resnet10: one block per stage)"}, m.arch);
  visit(FieldInfo{"init", "--init",
                  "Start from these weights: a state dict saved by Python's torch.save (torchvision or timm names), "
                  "a .safetensors file or a histotrain run folder; a head with another class count is replaced",
                  true},
        m.init);
  visit(FieldInfo{"freeze_backbone", "--freeze-backbone",
                  "Train the classifier head only (a linear probe): the other layers and their BatchNorm statistics "
                  "stay as --init gave them"},
        m.freeze_backbone);
  visit(FieldInfo{"backbone_lr_scale", "--backbone-lr-scale",
                  "Fine-tuning: every layer but the head learns at this share of the learning rate (e.g. 0.1)"},
        m.backbone_lr_scale);
}

template <class Optim, class Visit>
void optim_fields(Optim& o, Visit&& visit) {
  visit(FieldInfo{"epochs", "--epochs", "Epochs (with --time-budget: none, the budget decides)"}, o.epochs);
  visit(FieldInfo{"time_budget", "--time-budget",
                  "Seconds of training: the learning-rate decay is laid over them instead of the epochs, and the run "
                  "validates and stops when they are spent (0: off)"},
        o.time_budget);
  visit(FieldInfo{"batch_size", "--batch-size", "Images per forward pass on each rank (per optimizer step without --accumulate)"},
        o.batch_size);
  visit(FieldInfo{"accumulate", "--accumulate",
                  "Gradients of this many batches make one optimizer step (batch-size x accumulate images per rank; "
                  "with several ranks the all-reduce happens once per step)"},
        o.accumulate);
  visit(FieldInfo{"lr", "--lr", "Peak learning rate for one rank's batch"}, o.lr);
  visit(FieldInfo{"schedule", "--schedule", "After a linear warm-up: a linear (onecycle) or cosine decay to 0"},
        o.schedule);
  visit(FieldInfo{"warmup_epochs", "--warmup-epochs", "Linear warm-up length"}, o.warmup_epochs);
  visit(FieldInfo{"momentum", "--momentum", "Nesterov momentum"}, o.momentum);
  visit(FieldInfo{"weight_decay", "--weight-decay", "On conv/linear weights only"}, o.weight_decay);
  visit(FieldInfo{"label_smoothing", "--label-smoothing", "Label smoothing"}, o.label_smoothing);
  visit(FieldInfo{"balance", "--balance",
                  "none | sampler (each epoch draws every class equally often) | loss (inverse-frequency class "
                  "weights in the cross-entropy)"},
        o.balance);
  visit(FieldInfo{"ema", "--ema", "Validate and save a moving average of the weights with this decay (e.g. 0.99; 0: off)"},
        o.ema);
  visit(FieldInfo{"clip_grad", "--clip-grad",
                  "Scale the gradients down to this global L2 norm when they exceed it, before each update (after "
                  "unscaling under fp16; 0: off)"},
        o.clip_grad);
  visit(FieldInfo{"lr_scaling", "--lr-scaling", "linear: peak lr x world size; none"}, o.lr_scaling);
}

template <class PrecisionGroup, class Visit>
void precision_fields(PrecisionGroup& p, Visit&& visit) {
  visit(FieldInfo{"amp", "--amp",
                  "Mixed precision: none | bf16 (CPU, CUDA) | fp16 (CUDA, loss scaling) | auto (the fastest here, "
                  "with or without channels-last: timed at the start, cached per machine)"},
        p.amp);
  visit(FieldInfo{"channels_last", "--channels-last",
                  "Channels-last (NHWC) memory format for activations and weights (with --amp auto: always)"},
        p.channels_last);
  visit(FieldInfo{"cuda_graph", "--cuda-graph",
                  "Replay the train step as one CUDA graph (CUDA, LibTorch 2.x, one process)"},
        p.cuda_graph);
  visit(FieldInfo{"conv_grad", "--conv-grad",
                  "Convolution weight gradients: auto (fp32 on CPU: per shape, the faster of LibTorch's kernel and "
                  "one GEMM, timed at its first backward; not with --deterministic) | native (LibTorch's kernel)"},
        p.conv_grad);
}

template <class Parallel, class Visit>
void parallel_fields(Parallel& p, Visit&& visit) {
  visit(FieldInfo{"backend", "--backend", "Data-parallel backend (auto: nccl on CUDA, gloo on CPU)"}, p.backend);
  visit(FieldInfo{"bucket_mb", "--bucket-mb", "Gradient all-reduce bucket size, MiB"}, p.bucket_mb);
  visit(FieldInfo{"grad_compression", "--grad-compression",
                  "How gradients travel between ranks: none | fp16 | bf16 (half the bytes) | powersgd[:RANK] "
                  "(rank-RANK factors of each weight matrix with error feedback, default rank 4)"},
        p.grad_compression);
  visit(FieldInfo{"powersgd_start_step", "--powersgd-start-step",
                  "PowerSGD: optimizer steps with uncompressed gradients before compressing"},
        p.powersgd_start_step);
  visit(FieldInfo{"dist_timeout", "--dist-timeout", "Seconds before a silent rank fails the run"}, p.dist_timeout);
  visit(FieldInfo{"pipeline_stages", "--pipeline-stages", "Cut the model into K stages, one per rank (launch -n K)"},
        p.pipeline_stages);
  visit(FieldInfo{"micro_batches", "--micro-batches", "Micro-batches per batch in the pipeline"}, p.micro_batches);
  visit(FieldInfo{"pipeline_schedule", "--pipeline-schedule",
                  "gpipe: every forward, then every backward; 1f1b: one forward, one backward (at most K "
                  "micro-batches' activations held)"},
        p.pipeline_schedule);
  visit(FieldInfo{"virtual_stages", "--virtual-stages",
                  "Chunks per pipeline stage: rank s runs chunks s, s+K, ... (interleaved schedule, a smaller bubble)"},
        p.virtual_stages);
  visit(FieldInfo{"stage_cut", "--stage-cut",
                  "Where the pipeline is cut: the first unit of each later stage, e.g. 4,7 (default: on measured cost)"},
        p.stage_cut);
  visit(FieldInfo{"devices", "--devices", "Stages on these devices in one process: cuda:0,cuda:1 (cpu,cpu to test)"},
        p.devices);
}

template <class Job, class Visit>
void job_fields(Job& j, Visit&& visit) {
  visit(FieldInfo{"threads", "--threads",
                  "Intra-op threads (0: $OMP_NUM_THREADS, else the cores shared among this node's ranks)", true},
        j.threads);
  visit(FieldInfo{"device", "--device", "cpu | cuda | cuda:N", true}, j.device);
  visit(FieldInfo{"seed", "--seed", "Seed for weights, split, order and augmentation"}, j.seed);
  visit(FieldInfo{"out", "--out", "Run folder (metrics.jsonl, summary.json, checkpoint)", true}, j.out);
  visit(FieldInfo{"resume", "--resume", "Continue the run in this folder (its flags, plus any given again)", true},
        j.resume);
  visit(FieldInfo{"target_acc", "--target-acc", "Stop once validation accuracy reaches this (0..1; 0: never)"},
        j.target_acc);
  visit(FieldInfo{"val_every", "--val-every",
                  "Validate and checkpoint every N epochs and after the last (short GPU runs: fewer pauses)"},
        j.val_every);
  visit(FieldInfo{"checkpoint_steps", "--checkpoint-steps",
                  "Also write a checkpoint every N steps inside an epoch (long epochs on preemptible nodes)"},
        j.checkpoint_steps);
  visit(FieldInfo{"deterministic", "--deterministic",
                  "Deterministic kernels only: an interrupted and resumed run ends with the same weights, bit for bit"},
        j.deterministic);
  visit(FieldInfo{"max_steps", "--max-steps", "Stop after this many optimizer steps (benchmarks; 0: no limit)"},
        j.max_steps);
  visit(FieldInfo{"tta", "--tta", "Validate on the mean prediction over each tile's 8 flips and rotations"}, j.tta);
  visit(FieldInfo{"bootstrap", "--bootstrap",
                  "Resamples of source groups for the validation metrics' 95% confidence intervals (0: none)"},
        j.bootstrap);
  visit(FieldInfo{"quiet", "--quiet", "No progress bars, and no summary on stdout (summary.json has it)", true},
        j.quiet);
  visit(FieldInfo{"tensorboard", "--tensorboard",
                  "Also write each epoch's figures as TensorBoard scalars (events.out.tfevents.* in the run folder)",
                  true},
        j.tensorboard);
  visit(FieldInfo{"recipe", "--recipe",
                  "Start from a named set of flags (the log prints them; flags given here win). cpu-fast: the "
                  "fastest measured way to accuracy on a few CPU cores, for --time-budget runs"},
        j.recipe);
  visit(FieldInfo{"keep", "--keep",
                  "last | best: model.safetensors keeps the last validated weights, or those of the best validation "
                  "accuracy (checkpoint.json says which epoch; --resume continues from the last)"},
        j.keep);
}

// Every saved field of `config` (a TrainConfig, const or not), group by group.
template <class Config, class Visit>
void for_each_field(Config& config, Visit&& visit) {
  data_fields(config.data, visit);
  model_fields(config.model, visit);
  optim_fields(config.optim, visit);
  precision_fields(config.precision, visit);
  parallel_fields(config.parallel, visit);
  job_fields(config.job, visit);
}

}  // namespace histotrain
