"""The uniform interface every rsseg model follows."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
WINDOW_MULTIPLE = 32  # the input side every registered architecture accepts (its encoders' output stride)


class SegmentationModel(nn.Module):
    """Base class of all registered models.

    ``forward`` returns logits ``B×K×H×W`` in eval mode. In training mode a model with
    auxiliary heads returns ``(main, aux_1, ..., aux_n)``; ``aux_weights`` weights them in
    :meth:`loss`, which is the single entry point the trainer calls. Models whose training
    objective is not "criterion on every output" (e.g. SANet) override :meth:`loss`.
    """

    aux_weights: Sequence[float] = ()
    arch: dict
    window_multiple: int = WINDOW_MULTIPLE  # input height and width must be multiples of this

    def backbone(self) -> nn.Module:
        """The ImageNet backbone inside the model (timm parameter names), for pretrained weights."""
        return self.encoder.body

    def loss(self, outputs: torch.Tensor | tuple[torch.Tensor, ...], target: torch.Tensor,
             criterion: Criterion) -> tuple[torch.Tensor, dict[str, float]]:
        """Total training loss and its named parts for logging."""
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        main, *aux = outputs
        total = criterion(resize_logits(main, target), target)
        parts = {"main": float(total.detach())}
        for i, (weight, out) in enumerate(zip(self.aux_weights, aux), start=1):
            term = criterion(resize_logits(out, target), target)
            parts[f"aux{i}"] = float(term.detach())
            total = total + weight * term
        return total, parts


def window_multiple(model: nn.Module) -> int:
    """The multiple every input side of ``model`` must be (its ``window_multiple``, else 32)."""
    return int(getattr(model, "window_multiple", WINDOW_MULTIPLE))


def check_input_size(x: torch.Tensor, multiple: int = WINDOW_MULTIPLE) -> None:
    """Raise ``ValueError`` unless the input's height and width are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"input height and width must be multiples of {multiple}, got {h}×{w}")


def resize_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize logits to the target's spatial size when they differ."""
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return logits
