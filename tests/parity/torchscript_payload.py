#!/usr/bin/env python3
"""Writes a TorchScript archive whose __setstate__ prints a marker while it is being loaded.

  torchscript_payload.py OUT_PT

It stands for a model.pt from an untrusted source: what it runs could as well write files or
start programs. The tests check that histotrain never loads one unless told --trust-checkpoint.
"""
import sys
from typing import Tuple

import torch


class Payload(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.marker = 1

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[int, bool]:
        return (self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[int, bool]) -> None:
        self.marker = state[0]
        self.training = state[1]
        print("PAYLOAD RAN WHILE LOADING")


if __name__ == "__main__":
    torch.jit.script(Payload()).save(sys.argv[1])
