"""Sliding-window inference: window grid, blending weights, streaming engine, output kinds."""

from rsseg.tiling.grid import TileGrid, axis_starts
from rsseg.tiling.options import PredictOptions
from rsseg.tiling.outputs import OUTPUT_KINDS, OutputKind, register_output_kind
from rsseg.tiling.report import PredictReport
from rsseg.tiling.run import predict_scene

__all__ = ["OUTPUT_KINDS", "OutputKind", "PredictOptions", "PredictReport", "TileGrid", "axis_starts",
           "predict_scene", "register_output_kind"]
