#!/usr/bin/env python3
"""Loads a histotrain model.pt into torchvision's ResNet and compares logits.

  torchvision_parity.py MODEL_PT ARCH NUM_CLASSES [INPUT_BIN LOGITS_JSON]

Loading is strict (every torchvision parameter and buffer name must be present, nothing extra).
With an input (raw float32, N x 3 x H x W, shape in LOGITS_JSON) the logits of torchvision's
model in eval mode must match histotrain's within 1e-4. Exit code 0 on success.
"""
import json
import sys

import numpy as np
import torch
import torchvision


def main():
    model_pt, arch, num_classes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = getattr(torchvision.models, arch)(num_classes=num_classes)
    model.load_state_dict(torch.jit.load(model_pt).state_dict())  # strict=True
    print(f"{arch}: all {len(model.state_dict())} torchvision tensors loaded")
    if len(sys.argv) < 6:
        return 0
    with open(sys.argv[5]) as f:
        expected = json.load(f)
    x = torch.from_numpy(np.fromfile(sys.argv[4], dtype=np.float32).reshape(expected["shape"]))
    model.eval()
    with torch.no_grad():
        logits = model(x)
    diff = (logits - torch.tensor(expected["logits"])).abs().max().item()
    print(f"max abs logit difference: {diff:.3g}")
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
