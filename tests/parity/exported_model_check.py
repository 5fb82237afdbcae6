#!/usr/bin/env python3
"""Checks the models `histotrain export` writes against histotrain's own logits.

  exported_model_check.py tiles DIR SIZE COUNT       random RGB tiles as PNG (lossless: the same
                                                     pixels reach histotrain and the runtime)
  exported_model_check.py onnx MODEL PREDICTIONS     onnx.checker, then onnxruntime's logits
  exported_model_check.py torchscript MODEL PREDICTIONS   torch.jit.load(MODEL)(x)

PREDICTIONS is `histotrain predict --logits --csv`'s file. Each runtime takes the tiles as float
RGB in [0, 1], NCHW, in batches of every size from 1 to all; its logits must equal histotrain's
within 1e-4, and the ONNX "probabilities" output (when there is one) the softmax of the logits
divided by the temperature in the model's metadata. Exit 0 when all agree.
"""
import csv
import json
import sys

import numpy as np
from PIL import Image

TOLERANCE = 1e-4


def make_tiles(folder, size, count):
    import os
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        # Smooth colour fields plus noise: tissue-like statistics, not only noise.
        base = rng.uniform(0, 255, size=(1, 1, 3))
        ramp = np.linspace(0, 80, size)[None, :, None]
        pixels = np.clip(base + ramp + rng.normal(0, 25, size=(size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(os.path.join(folder, f"tile{i:03d}.png"))


def read_predictions(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r["error"]]
    logit_columns = [c for c in rows[0] if c.startswith("logit_")]
    images = np.stack([np.asarray(Image.open(r["path"]).convert("RGB"), dtype=np.float32) / 255.0 for r in rows])
    logits = np.array([[float(r[c]) for c in logit_columns] for r in rows], dtype=np.float64)
    return images.transpose(0, 3, 1, 2).copy(), logits


def compare(name, got, want):
    worst = float(np.max(np.abs(got - want)))
    print(f"{name}: largest difference from histotrain's logits {worst:.2e} over {want.size} values")
    return worst <= TOLERANCE


def batches(n):
    """Batch sizes 1, 2, ... and all: the batch dimension is dynamic."""
    return sorted({1, 2, 3, n})


def check_onnx(model_path, predictions):
    import onnx
    import onnxruntime as ort
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    images, want = read_predictions(predictions)
    ok = True
    for size in batches(len(images)):
        got = [session.run(outputs, {"input": images[i:i + size]}) for i in range(0, len(images), size)]
        logits = np.concatenate([g[0] for g in got])
        ok &= compare(f"onnxruntime, batches of {size}", logits, want)
        if "probabilities" in outputs:
            t = float(meta["temperature"])
            scaled = logits / t
            softmax = np.exp(scaled - scaled.max(1, keepdims=True))
            softmax /= softmax.sum(1, keepdims=True)
            probabilities = np.concatenate([g[outputs.index("probabilities")] for g in got])
            ok &= float(np.max(np.abs(probabilities - softmax))) <= 1e-5
    print("classes:", json.loads(meta["classes"]), "image size:", meta["image_size"])
    return ok


def check_torchscript(model_path, predictions):
    import torch
    model = torch.jit.load(model_path)
    images, want = read_predictions(predictions)
    ok = True
    with torch.no_grad():
        for size in batches(len(images)):
            logits = torch.cat([model(torch.from_numpy(images[i:i + size])) for i in range(0, len(images), size)])
            ok &= compare(f"torch.jit.load(...)(x), batches of {size}", logits.double().numpy(), want)
    return ok


def main():
    mode = sys.argv[1]
    if mode == "tiles":
        make_tiles(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    check = {"onnx": check_onnx, "torchscript": check_torchscript}[mode]
    return 0 if check(sys.argv[2], sys.argv[3]) else 1


if __name__ == "__main__":
    sys.exit(main())
