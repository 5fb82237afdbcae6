#!/usr/bin/env python3
"""Writes a torchvision ResNet's state dict the way users save pretrained weights, with the logits
Python computes, for histotrain's --init to reproduce.

  torchvision_state_dict.py ARCH NUM_CLASSES OUT_DIR

OUT_DIR gets:
  weights.pth     torch.save(model.state_dict())           (an OrderedDict, the zip format)
  wrapped.pth     torch.save({"epoch": 3, "state_dict": {"module." + name: tensor}})
                  (a training checkpoint of a DataParallel model)
  half.pth        the state dict in float16 (as some hubs ship it)
  x.bin, logits.json   an input (float32, N x 3 x H x W) and the float32 model's logits in eval mode

The weights are random (this machine has no internet), with BatchNorm statistics and affine
parameters that are not the defaults, so every tensor matters to the logits.
"""
import json
import sys

import numpy as np
import torch
import torchvision


def main():
    arch, num_classes, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.manual_seed(7)
    model = getattr(torchvision.models, arch)(num_classes=num_classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(123)
    model.eval()
    state = model.state_dict()
    torch.save(state, f"{out}/weights.pth")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}, f"{out}/wrapped.pth")
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}, f"{out}/half.pth")
    x = torch.randn(2, 3, 64, 64)
    x.numpy().astype(np.float32).tofile(f"{out}/x.bin")
    with torch.no_grad():
        logits = model(x)
    with open(f"{out}/logits.json", "w") as f:
        json.dump({"shape": list(x.shape), "logits": logits.tolist()}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
