"""Sliding-window inference: window grid, blending weights, streaming engine."""

from rsseg.tiling.engine import PredictOptions, PredictReport, predict_scene
from rsseg.tiling.grid import TileGrid, axis_starts

__all__ = ["PredictOptions", "PredictReport", "TileGrid", "axis_starts", "predict_scene"]
