"""Recomputes `histotrain eval`'s metrics from its --predictions CSV with scikit-learn and numpy.

usage: sklearn_metrics.py PREDICTIONS.csv REPORT.json
Exits 1, naming each metric that differs from the report by more than 1e-9.
"""
import csv
import json
import sys

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score, f1_score, log_loss,
                             roc_auc_score)


def expected_metrics(rows, classes):
    y = np.array([classes.index(r["label"]) for r in rows])
    p = np.array([[float(r[c]) for c in classes] for r in rows])
    predicted = np.array([classes.index(r["predicted"]) for r in rows])
    assert (predicted == p.argmax(1)).all(), "the predicted class is not the most probable one"
    k = len(classes)
    two_sided = [c for c in range(k) if (y == c).any() and (y != c).any()]
    expected = {
        "accuracy": accuracy_score(y, predicted),
        "balanced_accuracy": balanced_accuracy_score(y, predicted),
        "macro_f1": f1_score(y, predicted, average="macro", labels=sorted(set(y) | set(predicted))),
        "log_loss": log_loss(y, p, labels=list(range(k))),
        "macro_auc": float(np.mean([roc_auc_score(y == c, p[:, c]) for c in two_sided])),
    }
    if len(two_sided) == k:
        expected["macro_auc (one-vs-rest)"] = roc_auc_score(y, p, multi_class="ovr", average="macro")
    for c in two_sided:
        expected[f"per_class.{classes[c]}.auc"] = roc_auc_score(y == c, p[:, c])
        expected[f"per_class.{classes[c]}.average_precision"] = average_precision_score(y == c, p[:, c])
    # Expected calibration error: 15 equal-width bins of the top probability, (i/15, (i+1)/15].
    confidence = p.max(1)
    correct = predicted == y
    bins = np.clip(np.ceil(confidence * 15).astype(int) - 1, 0, 14)
    expected["ece"] = sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).sum()
                          for b in range(15) if (bins == b).any()) / len(y)
    return expected


def reported(report, name):
    value = report
    for part in name.replace(" (one-vs-rest)", "").split("."):
        value = value[part]
    return value


def main():
    with open(sys.argv[1], newline="") as f:
        rows = list(csv.DictReader(f))
    with open(sys.argv[2]) as f:
        report = json.load(f)
    failures = 0
    for name, value in expected_metrics(rows, report["classes"]).items():
        got = reported(report, name)
        if abs(got - value) > 1e-9:
            print(f"{name}: histotrain {got!r}, scikit-learn/numpy {value!r}")
            failures += 1
    print(f"{len(rows)} predictions; {failures} metric(s) differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
