"""What a prediction run did: :class:`PredictReport`."""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path

import rsseg
from rsseg.tiling.familiarity import RunStatistics, unfamiliar_reasons


@dataclass
class PredictReport:
    """What a prediction run did: inputs, parameters, outputs and timing."""

    scene: str
    mask: str
    probs: str | None
    width: int
    height: int
    tile: tuple[int, int]
    stride: tuple[int, int]
    batch_size: int
    tta: str
    bands: list[int]
    device: str
    windows: int = 0
    windows_run: int = 0
    windows_skipped: int = 0
    model_calls: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float | None = None
    gsd: dict = field(default_factory=dict)  # scene / model GSD (metres) and the window resampling factor
    mean_top_probability: float | None = None  # over valid pixels of all windows run (every 4th row, column)
    mean_entropy: float | None = None  # normalised (0 certain .. 1 uniform), over the same pixels
    tta_disagreement: float | None = None  # mean share of TTA views that disagree (with confidence bands)
    model: dict = field(default_factory=dict)
    key: str = ""  # hash of the model and every option that changes the result
    resumed_row: int | None = None  # first row computed when a journal was resumed
    skipped: bool = False  # finished earlier with the same key: nothing redone
    confidence: str | None = None
    precision: dict = field(default_factory=dict)  # name and why it was chosen
    outputs: dict = field(default_factory=dict)  # every output besides the mask, by kind name
    network_bytes: int | None = None  # bytes GDAL downloaded (remote scenes, VRTs of remote files)
    scene_bytes: int | None = None  # a remote scene's size, as its server gives it
    rsseg_version: str = rsseg.__version__

    @property
    def mpix_per_s(self) -> float:
        return self.width * self.height / 1e6 / max(self.seconds, 1e-9)

    def summary_line(self) -> str:
        if self.skipped:
            return f"{Path(self.scene).name}: finished earlier with the same model and options -> {self.mask}"
        resumed = f", resumed at row {self.resumed_row}" if self.resumed_row is not None else ""
        cuda = f", peak CUDA {self.peak_cuda_mb:.0f} MB" if self.peak_cuda_mb is not None else ""
        gsd = f", {self.gsd['text']}" if self.gsd.get("text") else ""
        return (f"{Path(self.scene).name}: {self.width}x{self.height} px{gsd}, {self.windows} windows "
                f"({self.windows_skipped} skipped), {self.seconds:.1f} s, {self.mpix_per_s:.2f} MPix/s, "
                f"peak RSS {self.peak_rss_mb:.0f} MB{cuda}{resumed}{self._network()} -> {self.mask}")

    def _network(self) -> str:
        """The bytes read over the network, and their share of the file when its size is known."""
        if not self.network_bytes:
            return ""
        share = f" ({100 * self.network_bytes / self.scene_bytes:.2f} % of {self.scene_bytes})" \
            if self.scene_bytes else ""
        return f", {self.network_bytes} bytes read over the network{share}"

    def unfamiliar_line(self) -> str | None:
        """One line when the scene looks unlike what the model was trained on, else ``None``."""
        reasons = unfamiliar_reasons(RunStatistics(self.mean_top_probability, self.mean_entropy,
                                                   self.tta_disagreement)) or []
        if self.gsd.get("outside"):
            lo, hi = self.gsd["model"]
            span = f"{lo:g}-{hi:g} m" if lo != hi else f"{lo:g} m"
            reasons.append(f"scene GSD {self.gsd['scene']:.3g} m far from the trained {span}")
        if not reasons:
            return None
        return (f"Note: {Path(self.scene).name} looks unlike this model's training data ({'; '.join(reasons)}); "
                "check the map, or fine-tune on a few labelled tiles")

    def to_json(self) -> dict:
        return {**asdict(self), "mpix_per_s": self.mpix_per_s}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB).

    Linux's ``VmHWM`` where there is one: ``ru_maxrss`` survives ``exec``, so a process started
    from a large one (a notebook, a benchmark) would report its parent's size.
    """
    try:
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
