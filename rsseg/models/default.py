"""Where the bundled default model lives."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "data_samples" / "models" / "default.pt"
