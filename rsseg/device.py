"""Which torch device and how many CPU threads: written once for predict, evaluate and train."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from rsseg.choices import check_device_name
from rsseg.errors import RssegError


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device of ``device``: ``auto`` picks CUDA when present; unavailable ones raise."""
    try:
        check_device_name(device)
    except ValueError as err:
        raise RssegError(f"device {err}") from None
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RssegError(f"device {device}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RssegError(f"device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op CPU threads (``None``: unchanged), restored afterwards."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
