"""Test-time augmentation: dihedral transforms and their inverses."""

from __future__ import annotations

from typing import Callable

import torch

from rsseg.choices import TTA_MODES

Transform = Callable[[torch.Tensor], torch.Tensor]


def tta_transforms(mode: str, square: bool) -> list[tuple[Transform, Transform]]:
    """(forward, inverse) pairs on B×C×H×W tensors.

    ``flip``: identity, horizontal, vertical, both. ``d4``: the 8 rotations/reflections of the
    square (needs square windows, since 90° rotations swap height and width).
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; choose from {', '.join(TTA_MODES)}")
    if mode == "d4" and not square:
        raise ValueError("d4 needs square windows (rotations swap height and width); use flip")

    def flip(dims: tuple[int, ...]) -> tuple[Transform, Transform]:
        f = (lambda t: t.flip(dims)) if dims else (lambda t: t)
        return f, f

    def rot(k: int, then_flip: bool) -> tuple[Transform, Transform]:
        if then_flip:
            return (lambda t: torch.rot90(t, k, (2, 3)).flip(3)), (lambda t: torch.rot90(t.flip(3), -k, (2, 3)))
        return (lambda t: torch.rot90(t, k, (2, 3))), (lambda t: torch.rot90(t, -k, (2, 3)))

    if mode == "none":
        return [flip(())]
    if mode == "flip":
        return [flip(()), flip((3,)), flip((2,)), flip((2, 3))]
    return [rot(k, f) for k in range(4) for f in (False, True)]


def tta_probs(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
              views: list[tuple[Transform, Transform]],
              view_classes: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Softmax probabilities B×K×H×W of ``forward`` (images to logits) averaged over the TTA ``views``.

    ``views`` come from :func:`tta_transforms`; every view's logits are inverted before averaging.
    Each view's own top classes (B×H×W uint8) are appended to ``view_classes`` when it is given.
    """
    total = None
    for to_view, from_view in views:
        probs = from_view(torch.softmax(forward(to_view(x)).float(), 1))
        if view_classes is not None:
            view_classes.append(probs.argmax(1).to(torch.uint8))
        total = probs if total is None else total.add_(probs)
    assert total is not None, "no TTA views"
    return total / len(views) if len(views) > 1 else total
