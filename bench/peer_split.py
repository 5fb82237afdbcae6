#!/usr/bin/env python3
"""Writes the validation tiles of torch_fast_recipe.py's grouped split (the same walk of the data,
the same groups.csv lookup, the same torch.randperm over the sorted group names), one file name
per line, so that `histotrain train --val-images FILE` validates on exactly the peer's tiles.

  peer_split.py --data ROOT --groups groups.csv --classes lung_aca,lung_n,lung_scc --split-seed 0 > val.txt
"""
import argparse, csv, os

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', required=True)
    ap.add_argument('--groups')
    ap.add_argument('--classes', default='colon_aca,colon_n,lung_aca,lung_n,lung_scc')
    ap.add_argument('--val-fraction', type=float, default=0.2)
    ap.add_argument('--split-seed', type=int, default=0)
    a = ap.parse_args()
    classes = a.classes.split(',')
    groups = {}
    if a.groups:
        with open(a.groups) as fh:
            groups = {r['filename']: r['group_id'] for r in csv.DictReader(fh)}
    names = []
    for d, _, files in sorted(os.walk(a.data)):
        if os.path.basename(d) in classes:
            names += [f for f in sorted(files) if f.lower().endswith(('.jpeg', '.jpg'))]
    g = [groups.get(n, n) for n in names]
    uniq = sorted(set(g))
    order = torch.randperm(len(uniq), generator=torch.Generator().manual_seed(a.split_seed)).tolist()
    counts = {}
    for x in g:
        counts[x] = counts.get(x, 0) + 1
    val_groups, n = set(), 0
    for i in order:
        if n >= a.val_fraction * len(g):
            break
        val_groups.add(uniq[i])
        n += counts[uniq[i]]
    for name, group in zip(names, g):
        if group in val_groups:
            print(name)


if __name__ == '__main__':
    main()
