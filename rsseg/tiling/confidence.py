"""Per-pixel confidence of a prediction: computed from the blended class probabilities as rows finish.

Every band is in [0, 1] (written as uint8, value × 255):

- ``top_probability``: the probability of the predicted class, max_k p_k;
- ``margin``: top-1 minus top-2 probability (0 = a tie between two classes; with a single class
  there is no runner-up, and the margin is the top probability);
- ``entropy``: -Σ p_k ln p_k / ln K (0 = all mass on one class, 1 = uniform over the K classes);
- ``tta_disagreement`` (with test-time augmentation): the share of the augmented views whose own
  top class differs from the top class of their average, blended over overlapping windows like
  the probabilities (0 = every view agrees).
"""

from __future__ import annotations

import math

import torch

BANDS = ("top_probability", "margin", "entropy")
TTA_BAND = "tta_disagreement"


def band_names(tta: bool) -> list[str]:
    """Names (and order) of the confidence bands, with the TTA band when augmentations are averaged."""
    return [*BANDS, TTA_BAND] if tta else list(BANDS)


def confidence_bands(probs: torch.Tensor, disagreement: torch.Tensor | None = None) -> torch.Tensor:
    """The confidence bands (3, or 4 with ``disagreement``) × n × W of K × n × W class probabilities."""
    k = probs.shape[0]
    if k == 1:
        top = margin = probs[0]
        entropy = torch.zeros_like(top)
    else:
        top2 = probs.topk(2, dim=0).values
        top, margin = top2[0], top2[0] - top2[1]
        entropy = torch.special.entr(probs).sum(0).div_(math.log(k)).clamp_(0, 1)  # entr(0) = 0
    bands = [top, margin, entropy] + ([disagreement] if disagreement is not None else [])
    return torch.stack(bands)


def view_disagreement(view_classes: list[torch.Tensor], mean_probs: torch.Tensor) -> torch.Tensor:
    """Share of the views (each B×H×W top classes) whose top class differs from that of ``mean_probs`` (B×K×H×W)."""
    top = mean_probs.argmax(1)
    differ = torch.zeros(top.shape, dtype=torch.float32, device=top.device)
    for classes in view_classes:
        differ += classes != top
    return differ.div_(len(view_classes))
