"""Confusion matrix and the segmentation metrics derived from it (IoU, F1, OA)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


class ConfusionMatrix:
    """Accumulates a K×K matrix (rows: reference, columns: prediction), ignore index excluded."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str = "cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add predicted and reference class ids of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and reference {tuple(target.shape)} differ in shape")
        valid = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        index = target[valid].long() * self.num_classes + pred[valid].long().to(target.device)
        counts = torch.bincount(index, minlength=self.num_classes ** 2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes).to(self.matrix.device)


def compute_metrics(matrix: torch.Tensor | np.ndarray, class_names: Sequence[str],
                    excluded_from_mean: Sequence[int] = ()) -> dict:
    """Per-class IoU/F1/precision/recall and the summary metrics of both conventions.

    ``all``: mIoU and mean F1 over every class. ``papers``: the benchmarks' convention, means
    over the classes not in ``excluded_from_mean`` (e.g. ISPRS without Clutter). OA is over all
    pixels in both. A class absent from reference and prediction has NaN scores and is left out
    of the means.
    """
    cm = np.asarray(matrix.cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=np.float64)
    tp = np.diag(cm)
    ref, pred = cm.sum(1), cm.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (ref + pred - tp)
        f1 = 2 * tp / (ref + pred)
        precision = tp / pred
        recall = tp / ref
    total = cm.sum()
    kept = [i for i in range(len(class_names)) if i not in set(excluded_from_mean)]

    def mean(values: np.ndarray, idx: Sequence[int]) -> float:
        chosen = values[list(idx)]
        return float(np.nanmean(chosen)) if np.isfinite(chosen).any() else float("nan")

    oa = float(tp.sum() / total) if total else float("nan")
    return {
        "per_class": {name: {"IoU": float(iou[i]), "F1": float(f1[i]), "precision": float(precision[i]),
                             "recall": float(recall[i]), "pixels": int(ref[i])}
                      for i, name in enumerate(class_names)},
        "all": {"mIoU": mean(iou, range(len(class_names))), "mF1": mean(f1, range(len(class_names))), "OA": oa},
        "papers": {"mIoU": mean(iou, kept), "mF1": mean(f1, kept), "OA": oa,
                   "classes": [class_names[i] for i in kept]},
        "pixels": int(total),
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }


def metric_value(metrics: dict, key: str) -> float:
    """Look up ``"mIoU"`` (papers' convention), or ``"all.mF1"`` / ``"papers.OA"`` style keys."""
    group, _, name = key.rpartition(".")
    try:
        return float(metrics[group or "papers"][name])
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; use mIoU, mF1, OA, optionally prefixed all. or papers.") from None


def format_table(metrics: dict) -> str:
    """A plain-text table of per-class scores followed by both summary conventions."""
    lines = [f"{'class':<16}{'IoU':>8}{'F1':>8}{'pixels':>14}"]
    for name, row in metrics["per_class"].items():
        lines.append(f"{name:<16}{100 * row['IoU']:>8.2f}{100 * row['F1']:>8.2f}{row['pixels']:>14d}")
    papers = metrics["papers"]
    lines.append(f"all classes:      mIoU {100 * metrics['all']['mIoU']:.2f}  mF1 {100 * metrics['all']['mF1']:.2f}"
                 f"  OA {100 * metrics['all']['OA']:.2f}")
    lines.append(f"papers ({len(papers['classes'])} cls):  mIoU {100 * papers['mIoU']:.2f}  "
                 f"mF1 {100 * papers['mF1']:.2f}  OA {100 * papers['OA']:.2f}")
    rule = metrics.get("protocol") or {}
    if "mIoU" in rule:
        lines.append(f"protocol {rule['name']} ({len(rule['classes'])} cls):  mIoU {100 * rule['mIoU']:.2f}  "
                     f"mF1 {100 * rule['mF1']:.2f}  OA {100 * rule['OA']:.2f}")
    return "\n".join(lines)
