"""Training criteria: cross-entropy with label smoothing plus soft Dice, ignore index and label set aware."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class DiceLoss(nn.Module):
    """Multi-class soft Dice on softmax probabilities, averaged over the classes present in the batch."""

    def __init__(self, ignore_index: int = 255, smooth: float = 1.0):
        super().__init__()
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        valid = (target != self.ignore_index).unsqueeze(1)
        probs = logits.float().softmax(1) * valid
        onehot = F.one_hot(target.clamp(0, num_classes - 1) * valid[:, 0], num_classes).permute(0, 3, 1, 2)
        onehot = onehot * valid
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        denom = probs.sum(dims) + onehot.sum(dims)
        dice = (2 * inter + self.smooth) / (denom + self.smooth)
        present = onehot.sum(dims) > 0
        return (1 - dice[present]).mean() if present.any() else logits.sum() * 0


class SegmentationLoss(nn.Module):
    """``CE(label_smoothing) + dice_weight · Dice``; pixels at the ignore index count in neither.

    A pixel of a label set ``(value, class ids)`` (a partial label, e.g. "not a building") adds
    ``-log Σ p(c), c in the set`` to the cross-entropy's mean and is left out of Dice: the model
    may put it in any class of the set.
    """

    def __init__(self, ignore_index: int = 255, label_smoothing: float = 0.05, dice_weight: float = 1.0,
                 label_sets: Sequence[tuple[int, Sequence[int]]] = ()):
        super().__init__()
        self.ignore_index = ignore_index
        self.ce = nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=label_smoothing)
        self.label_smoothing = label_smoothing
        self.dice = DiceLoss(ignore_index) if dice_weight else None
        self.dice_weight = dice_weight
        self.label_sets = [(value, list(members)) for value, members in label_sets]

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.label_sets:
            loss, target = self._with_sets(logits.float(), target)
        else:
            loss = self.ce(logits.float(), target)
        if self.dice is not None:
            loss = loss + self.dice_weight * self.dice(logits, target)
        return loss

    def _with_sets(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-entropy over class and label-set pixels, and the target with set pixels ignored."""
        log_all = logits.logsumexp(1)
        set_sum, set_count = logits.sum() * 0, 0
        for value, members in self.label_sets:
            inside = target == value
            if inside.any():
                set_sum = set_sum + (log_all - logits[:, members].logsumexp(1))[inside].sum()
                set_count += int(inside.sum())
                target = target.masked_fill(inside, self.ignore_index)
        class_count = int((target != self.ignore_index).sum())
        class_sum = F.cross_entropy(logits, target, ignore_index=self.ignore_index,
                                    label_smoothing=self.label_smoothing, reduction="sum")
        return (class_sum + set_sum) / max(1, class_count + set_count), target
