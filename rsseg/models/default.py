"""Where the bundled default model lives: package data, so that any install of rsseg has it."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent / "weights" / "default.pt"
