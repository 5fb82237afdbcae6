#!/usr/bin/env python3
"""Reads a run folder's event files with TensorBoard's own reader and prints the scalars as JSON:
{"tag": [[step, value], ...], ...}. TensorBoard checks each record's CRCs as it reads; a damaged
record stops it, and so exits non-zero here."""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    accumulator = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
    accumulator.Reload()
    scalars = {tag: [[e.step, e.value] for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
    print(json.dumps(scalars, sort_keys=True))
    return 0 if scalars else 1


if __name__ == "__main__":
    sys.exit(main())
