#!/usr/bin/env python3
"""Loads a histotrain model.pt or model.safetensors into torchvision's ResNet and compares logits.

  torchvision_parity.py MODEL ARCH NUM_CLASSES [INPUT_BIN LOGITS_JSON]

model.safetensors is read with the standard library and torch.frombuffer alone (the layout is
the format's specification: an 8-byte little-endian header size, a JSON header, the data), so
the check does not depend on histotrain's own reader.

Loading is strict (every torchvision parameter and buffer name must be present, nothing extra).
With an input (raw float32, N x 3 x H x W, shape in LOGITS_JSON) the logits of torchvision's
model in eval mode must match histotrain's within 1e-4. Exit code 0 on success.
"""
import json
import struct
import sys

import numpy as np
import torch
import torchvision


DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    header.pop("__metadata__", None)
    body = bytearray(data[8 + header_size:])
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(body[begin:end], dtype=DTYPES[info["dtype"]]) if end > begin else torch.empty(0)
        tensors[name] = flat.reshape(info["shape"])
    return tensors


def main():
    model_file, arch, num_classes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = getattr(torchvision.models, arch)(num_classes=num_classes)
    if model_file.endswith(".safetensors"):
        state = read_safetensors(model_file)
    else:
        state = torch.jit.load(model_file).state_dict()
    model.load_state_dict(state)  # strict=True
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
