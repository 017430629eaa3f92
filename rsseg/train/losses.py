"""Training criteria: cross-entropy with label smoothing plus soft Dice, ignore index aware."""

from __future__ import annotations

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
    """``CE(label_smoothing) + dice_weight · Dice``; pixels at the ignore index count in neither."""

    def __init__(self, ignore_index: int = 255, label_smoothing: float = 0.05, dice_weight: float = 1.0):
        super().__init__()
        self.ce = nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=label_smoothing)
        self.dice = DiceLoss(ignore_index) if dice_weight else None
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.ce(logits.float(), target)
        if self.dice is not None:
            loss = loss + self.dice_weight * self.dice(logits, target)
        return loss
