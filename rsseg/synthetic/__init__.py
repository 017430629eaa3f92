"""Deterministic ISPRS-like synthetic scenes: a city laid out from a seed, rendered window by window.

The layout (road grid, blocks, buildings, trees, cars, clutter) is planned once for the whole
scene in a rotated "city frame" (u along the streets, v across them), which is cheap
(:mod:`~rsseg.synthetic.layout`). Pixels are then rendered for any window independently
(:mod:`~rsseg.synthetic.draw`, :mod:`~rsseg.synthetic.render`): every texture and noise value is a
function of the global pixel position, so a window renders exactly as the same crop of the whole
scene, and :func:`write_scene` streams any size block-row by block-row in bounded memory.
"""

from rsseg.synthetic.layout import LANDSCAPES, plan_scene
from rsseg.synthetic.materials import BUILDING, CAR, CLUTTER, CRS, GSD, IMSURF, LOWVEG, ORIGIN, TREE
from rsseg.synthetic.plan import Prim, ScenePlan
from rsseg.synthetic.render import iter_blocks, render_window
from rsseg.synthetic.writer import scene_transform, write_scene

__all__ = ["BUILDING", "CAR", "CLUTTER", "CRS", "GSD", "IMSURF", "LANDSCAPES", "LOWVEG", "ORIGIN", "TREE", "Prim",
           "ScenePlan", "iter_blocks", "plan_scene", "render_window", "scene_transform", "write_scene"]
