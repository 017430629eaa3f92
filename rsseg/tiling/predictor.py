"""Raw windows to class probabilities: normalise, run the model (with TTA), softmax."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from rsseg.errors import OptionError, RssegError
from rsseg.models.checkpoint import ModelCard
from rsseg.models.onnx import OnnxModel
from rsseg.models.precision import resolve_precision
from rsseg.tiling.confidence import view_disagreement
from rsseg.tiling.familiarity import RunStatistics
from rsseg.tiling.gsd import resize
from rsseg.tiling.options import PredictOptions
from rsseg.tiling.tta import tta_probs, tta_transforms

#: the run's statistics (top-class probability, entropy, view disagreement) sample every this many rows and columns
STATS_STEP = 4


@dataclass
class Prepared:
    """A batch ready for the model: its input ``x``, the valid pixels (B×H×W) and the window size."""

    x: torch.Tensor
    valid: torch.Tensor
    window: tuple[int, int]


class Predictor:
    """Normalises raw windows, runs the model (with TTA) and returns softmax probabilities.

    ``options`` give the TTA mode and the precision; ``scale`` divides raw values; ``square``: the
    windows are square (rotations allowed). With ``disagreement`` (and TTA) one channel follows
    the K probabilities: the share of augmented views whose top class differs from that of their average.
    """

    def __init__(self, model: torch.nn.Module, card: ModelCard, device: torch.device, options: PredictOptions,
                 scale: float, square: bool, model_input: tuple[int, int] | None = None,
                 disagreement: bool = False):
        tta = options.tta
        self.model, self.device = model, device
        self.model_input = model_input  # windows resampled to this shape for the model (GSD), else None
        mean = torch.tensor(card.input.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(card.input.std, device=device).view(1, -1, 1, 1)
        self.gain, self.bias = 1 / (scale * std), -mean / std  # (raw / scale - mean) / std
        try:
            self.views = tta_transforms(tta, square)
        except ValueError as err:
            raise OptionError("tta", tta, str(err)) from None
        self.disagreement = disagreement and len(self.views) > 1
        self.precision = resolve_precision(options.precision, device, model)
        self.name = f"model {card.arch['name']} ({self.precision.name})"
        # ONNX Runtime's threads, or a GPU: its calls can overlap PyTorch's work on the CPU's cores
        self.own_threads = device.type != "cpu" or isinstance(model, OnnxModel)
        self.calls = 0
        self.seconds = 0.0  # the model's own forward time
        self.sums = {"top": 0.0, "entropy": 0.0, "disagreement": 0.0}  # over sampled valid pixels, and their count
        self.count = 0

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        logits = self.model(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        if not isinstance(logits, torch.Tensor) or logits.shape[-2:] != x.shape[-2:]:
            raise RssegError("model did not return B×K×H×W logits at window size (is it in eval mode?)")
        return logits

    def prepare(self, pixels: np.ndarray, valid: np.ndarray) -> Prepared:
        """Raw windows as the model's input: normalised, invalid pixels at the band mean, resized (GSD)."""
        x = torch.from_numpy(pixels).to(self.device, non_blocking=True).float()
        x = torch.addcmul(self.bias, x, self.gain)
        valid_t = torch.from_numpy(valid).to(self.device)
        if not valid.all():
            x = x * valid_t[:, None]  # invalid pixels -> band mean
        window = (x.shape[-2], x.shape[-1])
        return Prepared(resize(x, self.model_input) if self.model_input else x, valid_t, window)

    def infer(self, batch: Prepared) -> torch.Tensor:
        """The model's probabilities (with TTA; then the views' disagreement) at the model's input size."""
        dtype = self.precision.dtype
        with torch.inference_mode(), torch.autocast(self.device.type, dtype, enabled=dtype is not None):
            view_classes: list[torch.Tensor] | None = [] if self.disagreement else None
            probs = tta_probs(self._forward, batch.x, self.views, view_classes)
            if view_classes:
                probs = torch.cat([probs, view_disagreement(view_classes, probs)[:, None]], 1)
            return probs.float()

    def finish(self, probs: torch.Tensor, batch: Prepared) -> torch.Tensor:
        """``probs`` of :meth:`infer` at the window size, added to the run's statistics."""
        with torch.inference_mode():
            probs = resize(probs, batch.window)
        classes = probs[:, :-1] if self.disagreement else probs
        self._accumulate(classes, probs[:, -1] if self.disagreement else None, batch.valid)
        return probs

    def __call__(self, pixels: np.ndarray, valid: np.ndarray) -> torch.Tensor:
        """Softmax probabilities B×K(+1)×H×W of raw windows: :meth:`prepare`, :meth:`infer`, :meth:`finish`."""
        batch = self.prepare(pixels, valid)
        return self.finish(self.infer(batch), batch)

    def _accumulate(self, probs: torch.Tensor, disagreement: torch.Tensor | None, valid: torch.Tensor) -> None:
        """Add the windows' top-class probability, normalised entropy and view disagreement to the run's sums.

        Taken on every :data:`STATS_STEP`-th row and column: a run's means barely move, and the
        logarithms of every pixel's K probabilities cost a third of a fast model's call.
        """
        probs, valid = probs[..., ::STATS_STEP, ::STATS_STEP], valid[..., ::STATS_STEP, ::STATS_STEP]
        if disagreement is not None:
            disagreement = disagreement[..., ::STATS_STEP, ::STATS_STEP]
        entropy = torch.special.entr(probs).sum(1) / math.log(max(probs.shape[1], 2))  # one pass: -p·log p
        every = bool(valid.all())
        for name, values in (("top", probs.amax(1)), ("entropy", entropy), ("disagreement", disagreement)):
            if values is not None:
                self.sums[name] += float(values.sum() if every else (values * valid).sum())
        self.count += valid.numel() if every else int(valid.sum())

    def statistics(self) -> RunStatistics:
        """The run's means over (sampled) valid pixels (``None`` before any window ran)."""
        if not self.count:
            return RunStatistics()
        mean = {name: total / self.count for name, total in self.sums.items()}
        return RunStatistics(mean["top"], mean["entropy"], mean["disagreement"] if self.disagreement else None)
