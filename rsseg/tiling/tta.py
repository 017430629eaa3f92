"""Test-time augmentation: dihedral transforms, rescaled views and their inverses."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from rsseg.choices import TTA_MODES

Transform = Callable[[torch.Tensor], torch.Tensor]
#: the scales of ``flip+scales`` (the recipes' multi-scale TTA)
TTA_SCALES = (0.75, 1.0, 1.25)
#: a rescaled view's height and width are multiples of this (every registered model accepts them)
SCALE_MULTIPLE = 32


def rescale(t: torch.Tensor, scale: float) -> torch.Tensor:
    """``t`` resized (bilinear) by ``scale``, to the nearest multiple of :data:`SCALE_MULTIPLE`."""
    if scale == 1.0:
        return t
    size = [max(SCALE_MULTIPLE, round(n * scale / SCALE_MULTIPLE) * SCALE_MULTIPLE) for n in t.shape[-2:]]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def tta_transforms(mode: str, square: bool) -> list[tuple[Transform, Transform]]:
    """(forward, inverse) pairs on B×C×H×W tensors.

    ``flip``: identity, horizontal, vertical, both. ``d4``: the 8 rotations/reflections of the
    square (needs square windows, since 90° rotations swap height and width). ``flip+scales``:
    the four flips at each of :data:`TTA_SCALES`; their inverses undo the flip, and
    :func:`tta_probs` resizes the probabilities back to the input's size.
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
    def scaled(view: tuple[Transform, Transform], scale: float) -> tuple[Transform, Transform]:
        return (lambda t: rescale(view[0](t), scale)), view[1]

    flips = [flip(()), flip((3,)), flip((2,)), flip((2, 3))]
    if mode == "flip":
        return flips
    if mode == "flip+scales":
        return [scaled(view, scale) for scale in TTA_SCALES for view in flips]
    return [rot(k, f) for k in range(4) for f in (False, True)]


def tta_probs(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
              views: list[tuple[Transform, Transform]],
              view_classes: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Softmax probabilities B×K×H×W of ``forward`` (images to logits) averaged over the TTA ``views``.

    ``views`` come from :func:`tta_transforms`; every view's logits are inverted before averaging
    (a rescaled view's probabilities are resized back to ``x``'s height and width).
    Each view's own top classes (B×H×W uint8) are appended to ``view_classes`` when it is given.
    """
    total = None
    for to_view, from_view in views:
        probs = from_view(torch.softmax(forward(to_view(x)).float(), 1))
        if probs.shape[-2:] != x.shape[-2:]:
            probs = F.interpolate(probs, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if view_classes is not None:
            view_classes.append(probs.argmax(1).to(torch.uint8))
        total = probs if total is None else total.add_(probs)
    assert total is not None, "no TTA views"
    return total / len(views) if len(views) > 1 else total
