"""Deterministic ISPRS-like synthetic scenes: a city laid out from a seed, rendered window by window.

The layout (road grid, blocks, buildings, trees, cars, clutter) is planned once for the whole
scene in a rotated "city frame" (u along the streets, v across them), which is cheap. Pixels are
then rendered for any window independently: every texture and noise value is a function of the
global pixel position, so a window renders exactly as the same crop of the whole scene, and
:func:`write_scene` streams any size block-row by block-row in bounded memory.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window
from tqdm import tqdm

from rsseg.data.classes import ISPRS
from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output
from rsseg.io.mask_meta import write_class_table

GSD = 0.09  # metres per pixel, as Vaihingen
CRS = "EPSG:32632"  # UTM 32N
ORIGIN = (497000.0, 5420000.0)  # west, north (near Vaihingen an der Enz)
BLOCK = 512
PX = 1.0 / GSD  # pixels per metre

IMSURF, BUILDING, LOWVEG, TREE, CAR, CLUTTER = range(6)

# materials: class label, two colours (R, G, B, NIR) mixed by large-scale noise, texture amplitude
# at three scales (~4 m, ~0.7 m, ~0.2 m) applied multiplicatively
_MATERIALS = {
    "grass": (LOWVEG, (84, 112, 52, 200), (126, 128, 78, 165), (0.10, 0.08, 0.10)),
    "asphalt": (IMSURF, (96, 97, 99, 92), (118, 116, 112, 110), (0.05, 0.03, 0.06)),
    "paving": (IMSURF, (156, 150, 140, 148), (176, 168, 156, 165), (0.04, 0.04, 0.06)),
    "marking": (IMSURF, (222, 222, 216, 210), (232, 230, 222, 220), (0.02, 0.03, 0.05)),
    "roof": (BUILDING, None, None, (0.03, 0.04, 0.07)),
    "tree": (TREE, None, None, (0.05, 0.30, 0.16)),
    "car": (CAR, None, None, (0.0, 0.01, 0.03)),
    "clutter": (CLUTTER, None, None, (0.08, 0.10, 0.12)),
    # rural ground, painted by large-scale noise (see ``ScenePlan.ground``): natural surfaces count as LowVeg
    "sand": (LOWVEG, (204, 194, 170, 196), (172, 160, 136, 172), (0.06, 0.08, 0.10)),
    "drygrass": (LOWVEG, (150, 140, 96, 172), (118, 116, 74, 156), (0.08, 0.10, 0.12)),
    "litter": (LOWVEG, (96, 86, 62, 124), (72, 74, 52, 112), (0.10, 0.12, 0.14)),
}
MATERIAL_IDS = {name: i for i, name in enumerate(_MATERIALS)}
_LABEL_OF = np.array([m[0] for m in _MATERIALS.values()], dtype=np.uint8)
_TEXTURE = np.array([m[3] for m in _MATERIALS.values()], dtype=np.float32)
# field colours: painted as the first colour, shifted towards the second by large-scale noise
_FIELD_BASE = {name: m[1] for name, m in _MATERIALS.items() if m[1] is not None}
_FIELD_SHIFT = np.array([np.subtract(m[2], m[1]) if m[1] else (0,) * 4 for m in _MATERIALS.values()], np.float32).T
_NOISE_CELLS = (44.0, 8.0)  # lattice spacing in pixels of the two coarser texture scales
_PERIOD = 509  # fine grain and sensor noise: periodic tables, too fine for the period to show


def _periodic_tables() -> tuple[np.ndarray, np.ndarray]:
    """Fine material grain (about 2 px, in [-1, 1]) and sensor noise (4 bands, sigma 2.2)."""
    rng = np.random.default_rng(12345)
    grain = rng.uniform(-1, 1, (_PERIOD, _PERIOD))
    for axis in (0, 1):  # a circular 1-2-1 smoothing, twice
        for _ in range(2):
            grain = (np.roll(grain, 1, axis) + 2 * grain + np.roll(grain, -1, axis)) / 4
    grain = (grain / np.abs(grain).max()).astype(np.float32)
    return grain, rng.normal(0.0, 2.2, (4, _PERIOD, _PERIOD)).astype(np.float32)


_GRAIN, _SENSOR = _periodic_tables()

ROOF_COLORS = [(150, 72, 54, 150), (128, 60, 48, 132), (172, 96, 70, 170), (92, 88, 90, 96),
               (70, 70, 76, 78), (160, 158, 152, 158), (118, 96, 80, 120)]
FLAT_ROOF_COLORS = [(150, 150, 146, 152), (120, 118, 114, 122), (178, 176, 170, 178), (96, 98, 96, 100)]
CAR_COLORS = [(225, 225, 225, 215), (30, 30, 34, 40), (150, 152, 156, 150), (160, 28, 30, 150),
              (40, 60, 130, 60), (90, 92, 96, 92), (200, 196, 180, 195), (24, 60, 40, 70)]
TREE_COLORS = [(46, 76, 34, 205), (58, 86, 40, 215), (40, 64, 36, 190), (70, 92, 46, 225)]
CONIFER_COLORS = [(30, 52, 38, 170), (38, 62, 44, 180), (52, 74, 50, 190), (26, 44, 40, 160)]
SNAG_COLORS = [(170, 168, 160, 150), (140, 134, 124, 130), (196, 192, 184, 170)]
CROWNS = ("round", "conifer", "snag")  # tree prim ``extra``: index into this
CLUTTER_COLORS = [(138, 112, 82, 140), (112, 92, 70, 118), (170, 120, 60, 160), (60, 110, 160, 90),
                  (190, 186, 172, 185), (150, 60, 40, 140), (84, 76, 64, 90)]


@dataclass
class Prim:
    """One drawable: an axis-aligned box in the city frame (a disc for trees) and its paint."""

    kind: str
    layer: int
    box: tuple[float, float, float, float]  # u0, v0, u1, v1 (discs: cu, cv, r, height)
    color: tuple[int, int, int, int] = (0, 0, 0, 0)
    material: str = "paving"
    extra: float = 0.0  # roof: 0 flat, 1/2 ridge along u/v; car: 1/2 along u/v; shadow: caster height (px);
    # tree: crown shape (index into CROWNS)


@dataclass
class ScenePlan:
    """A scene's layout: the city frame, the sun, and its primitives bucketed by 512-pixel block."""

    width: int
    height: int
    seed: int
    cos: float
    sin: float
    shadow: tuple[float, float]  # shadow offset in pixels per pixel of height (image x, y)
    landscape: str = "urban"
    ground: tuple[tuple[str, float], ...] = ()  # (material, share): open ground painted by large-scale noise
    prims: list[Prim] = field(default_factory=list)
    bounds: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # per primitive: x0, y0, x1, y1
    buckets: dict[tuple[int, int], list[int]] = field(default_factory=lambda: defaultdict(list))

    def to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cos * u - self.sin * v, self.sin * u + self.cos * v

    def to_city(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cos * x + self.sin * y, -self.sin * x + self.cos * y


# ----------------------------------------------------------------------------------- planning

class _Planner:
    """Lays out roads, blocks and their contents in the city frame, from one random generator."""

    def __init__(self, plan: ScenePlan, rng: np.random.Generator):
        self.plan, self.rng = plan, rng

    def m(self, lo: float, hi: float) -> float:
        """A uniform length in metres, returned in pixels."""
        return float(self.rng.uniform(lo, hi)) * PX

    def pick(self, options: list) -> tuple:
        return options[int(self.rng.integers(len(options)))]

    def add(self, kind: str, layer: int, box, color=(0, 0, 0, 0), material: str = "paving", extra: float = 0.0):
        self.plan.prims.append(Prim(kind, layer, tuple(float(b) for b in box), tuple(color), material, extra))

    def rect(self, box, material: str, layer: int = 1, color=None) -> None:
        self.add("rect", layer, box, color or (0, 0, 0, 0), material)

    def lines(self, lo: float, hi: float, step_m: tuple[float, float]) -> list[float]:
        out, pos = [], lo - self.m(0, step_m[1])
        while not out or out[-1] < hi:
            out.append(pos)
            pos += self.m(*step_m)
        return out

    def layout(self, umin: float, vmin: float, umax: float, vmax: float) -> None:
        """Road grid over the frame, blocks between roads (merged where a street is missing)."""
        pad = 60 * PX
        us = self.lines(umin - pad, umax + pad, (70, 130))
        vs = self.lines(vmin - pad, vmax + pad, (60, 110))
        half_u = [self.m(3, 5) for _ in us]  # half asphalt width of streets along v (at u = const)
        half_v = [self.m(3, 5) for _ in vs]
        walk = 2.2 * PX
        for u, h in zip(us, half_u):
            self.street((u - h, vmin - pad, u + h, vmax + pad), along_u=False, walk=walk)
        for i in range(len(us) - 1):
            top = vmin - pad
            for j, (v, h) in enumerate(zip(vs, half_v)):
                present = self.rng.random() < 0.8 or j == 0
                if present:
                    self.street((us[i] + half_u[i], v - h, us[i + 1] - half_u[i + 1], v + h), along_u=True, walk=walk)
                    self.block(us[i] + half_u[i] + walk, top + walk, us[i + 1] - half_u[i + 1] - walk, v - h - walk)
                    top = v + h
            self.block(us[i] + half_u[i] + walk, top + walk, us[i + 1] - half_u[i + 1] - walk, vmax + pad)

    def street(self, box, along_u: bool, walk: float) -> None:
        """Asphalt, sidewalks, a dashed centre line and cars, parked and driving."""
        u0, v0, u1, v1 = box
        walks = [(u0, v0 - walk, u1, v0), (u0, v1, u1, v1 + walk)] if along_u else \
            [(u0 - walk, v0, u0, v1), (u1, v0, u1 + walk, v1)]
        for w in walks:
            self.rect(w, "paving", layer=1)
        self.rect(box, "asphalt", layer=2)
        # work along the street: s runs along it, t across it
        s0, s1, t0, t1 = (u0, u1, v0, v1) if along_u else (v0, v1, u0, u1)

        def box_at(a0, a1, b0, b1):
            return (a0, b0, a1, b1) if along_u else (b0, a0, b1, a1)

        mid = (t0 + t1) / 2
        s = s0 + self.m(0, 3)
        while s < s1 - 3 * PX:
            self.rect(box_at(s, s + 3 * PX, mid - 0.07 * PX, mid + 0.07 * PX), "marking", layer=3)
            s += 9 * PX
        car_len, car_w = 4.5 * PX, 1.9 * PX
        for lane_t, parked in ((t0 + 0.3 * PX, True), (t1 - 0.3 * PX - car_w, True),
                               (mid - 2.6 * PX, False), (mid + 0.7 * PX, False)):
            s = s0 + self.m(2, 12)
            while s < s1 - car_len:
                if self.rng.random() < (0.3 if parked else 0.05):
                    jitter = self.m(-0.15, 0.15)
                    self.car(box_at(s, s + car_len, lane_t + jitter, lane_t + car_w + jitter), along_u)
                s += car_len + self.m(0.8, 8 if parked else 30)
        if self.rng.random() < 0.55:  # street trees overhanging sidewalk and road
            side = self.pick([t0 - walk, t1 + walk])
            s = s0 + self.m(3, 10)
            while s < s1 - 3 * PX:
                self.tree(*((s, side) if along_u else (side, s)), self.m(2.2, 4.2))
                s += self.m(7, 13)

    def car(self, box, along_u: bool) -> None:
        self.add("car", 4, box, self.pick(CAR_COLORS), "car", 1.0 if along_u else 2.0)
        self.add("shadow", 5, box, extra=1.3 * PX)

    def tree(self, cu: float, cv: float, r: float, crown: str = "round") -> None:
        """A crown (round broadleaf, star-edged conifer or grey dead snag) and its shadow."""
        height = r * (self.rng.uniform(3.0, 5.0) if crown == "conifer" else self.rng.uniform(1.3, 2.0))
        self.add("treeshadow", 7, (cu, cv, r * (0.6 if crown == "snag" else 1.0), height))
        color = self.pick({"round": TREE_COLORS, "conifer": CONIFER_COLORS, "snag": SNAG_COLORS}[crown])
        tint = self.rng.uniform(0.88, 1.12)
        self.add("tree", 8, (cu, cv, r, height), tuple(int(min(255, c * tint)) for c in color), "tree",
                 float(CROWNS.index(crown)))

    def grove(self, u0: float, v0: float, u1: float, v1: float, count: int, spread: float) -> None:
        """Clusters of overlapping crowns with centres inside the box."""
        if u1 - u0 < 2 * PX or v1 - v0 < 2 * PX:
            return
        for _ in range(count):
            cu, cv = self.rng.uniform(u0, u1), self.rng.uniform(v0, v1)
            for _ in range(int(self.rng.integers(1, 6))):
                r = self.m(1.8, 5.0)
                self.tree(cu + self.rng.normal(0, spread * r), cv + self.rng.normal(0, spread * r), r)

    def clutter(self, u0: float, v0: float, u1: float, v1: float, count: int, size_m=(1.0, 5.0)) -> None:
        for _ in range(count):
            w, h = self.m(*size_m), self.m(*size_m)
            if u1 - u0 <= w or v1 - v0 <= h:
                return
            cu, cv = self.rng.uniform(u0, u1 - w), self.rng.uniform(v0, v1 - h)
            self.rect((cu, cv, cu + w, cv + h), "clutter", layer=2, color=self.pick(CLUTTER_COLORS))

    def building(self, box, ridge: int, color, height: float) -> None:
        """A roof (gabled when ``ridge``) and its cast shadow."""
        self.add("shadow", 5, box, extra=height)
        self.add("roof", 6, box, color, "roof", float(ridge))

    def layout_rural(self, umin: float, vmin: float, umax: float, vmax: float, conifer: float) -> None:
        """Woodland and meadow stands of random density, an occasional road and farmstead."""
        pad = 40 * PX
        u = umin - pad
        while u < umax + pad:
            w = self.m(30, 90)
            v = vmin - pad
            while v < vmax + pad:
                h = self.m(30, 90)
                self.stand(u, v, u + w, v + h, conifer)
                v += h
            u += w
        if self.rng.random() < 0.5:
            c, h = self.rng.uniform(umin, umax), self.m(2.5, 4)
            self.street((c - h, vmin - pad, c + h, vmax + pad), along_u=False, walk=0.0)

    def stand(self, u0: float, v0: float, u1: float, v1: float, conifer: float) -> None:
        """Trees at a density drawn per stand (meadow to closed canopy), some dead; rarely a farmstead."""
        kind = self.rng.choice(["meadow", "sparse", "open", "dense", "farm"], p=[0.2, 0.25, 0.25, 0.22, 0.08])
        per_m2 = {"meadow": 1 / 3000, "sparse": 1 / 200, "open": 1 / 70, "dense": 1 / 22, "farm": 1 / 400}[kind]
        area = (u1 - u0) * (v1 - v0) / PX ** 2
        for _ in range(int(self.rng.poisson(area * per_m2))):
            crown = "snag" if self.rng.random() < 0.04 else ("conifer" if self.rng.random() < conifer else "round")
            r = self.m(0.8, 2.6) if crown == "conifer" else self.m(1.2, 4.5)
            self.tree(self.rng.uniform(u0, u1), self.rng.uniform(v0, v1), r, crown)
        if kind == "farm" and u1 - u0 > 25 * PX and v1 - v0 > 25 * PX:
            bu, bv = u0 + self.m(3, 8), v0 + self.m(3, 8)
            w, d = self.m(9, 20), self.m(8, 14)
            self.rect((bu - 3 * PX, bv - 3 * PX, bu + w + 8 * PX, bv + d + 8 * PX), "paving", layer=1)
            self.building((bu, bv, bu + w, bv + d), int(self.rng.integers(0, 3)), self.pick(ROOF_COLORS), self.m(5, 9))
            self.car((bu + w + 1 * PX, bv + 1 * PX, bu + w + 2.9 * PX, bv + 5.5 * PX), False)
            self.clutter(bu - 3 * PX, bv + d, bu + w, bv + d + 8 * PX, int(self.rng.integers(0, 4)))

    def block(self, u0: float, v0: float, u1: float, v1: float) -> None:
        if u1 - u0 < 12 * PX or v1 - v0 < 12 * PX:
            if u1 > u0 and v1 > v0:
                self.grove(u0, v0, u1, v1, 1, 0.8)
            return
        kind = self.rng.choice(["houses", "apartments", "park", "parking", "industrial"],
                              p=[0.5, 0.26, 0.07, 0.05, 0.12])
        getattr(self, f"block_{kind}")(u0, v0, u1, v1)

    def block_houses(self, u0, v0, u1, v1) -> None:
        """Rows of detached houses facing the streets, driveways, gardens with trees and clutter."""
        along_u = (u1 - u0) >= (v1 - v0)
        length = (u1 - u0) if along_u else (v1 - v0)
        depth = (v1 - v0) if along_u else (u1 - u0)
        a0 = u0 if along_u else v0
        b0 = v0 if along_u else u0

        def box(a, b, da, db):  # rows run along a; b measured from the block edge, up to depth
            return (a, b, a + da, b + db) if along_u else (b, a, b + db, a + da)

        row_depth = min(depth / 2, 24 * PX)
        for facing in (0, 1) if depth > 24 * PX else (0,):
            a = a0 + self.m(2, 8)
            while a < a0 + length - 10 * PX:
                w, d, setback = self.m(10, 18), self.m(9, 14), self.m(2.5, 6)
                if a + w > a0 + length - 2 * PX or setback + d > row_depth - 1 * PX:
                    break
                b = b0 + setback if facing == 0 else b0 + depth - setback - d
                color = self.pick(ROOF_COLORS)
                height = self.m(6, 10)
                ridge = 1 if along_u else 2
                self.building(box(a, b, w, d), ridge, color, height)
                if self.rng.random() < 0.35:  # L-shape: a wing towards the garden
                    ww, wd = w * self.rng.uniform(0.35, 0.55), self.m(4, 8)
                    wa = a if self.rng.random() < 0.5 else a + w - ww
                    wb = b + d if facing == 0 else b - wd
                    if abs(wb - b0) + wd < depth:
                        self.building(box(wa, wb, ww, wd), 3 - ridge, color, height * 0.9)
                gap = self.m(3.5, 8)
                if self.rng.random() < 0.6 and gap > 3.5 * PX:  # driveway to the street
                    start, run = (b0, setback + d) if facing == 0 else (b, depth - (b - b0))
                    self.rect(box(a + w + 0.3 * PX, start, 3 * PX, run), "paving", layer=1)
                    if self.rng.random() < 0.5:
                        db = b0 + 0.5 * PX if facing == 0 else b0 + depth - 5.0 * PX
                        self.car(box(a + w + 0.85 * PX, db, 1.9 * PX, 4.5 * PX), not along_u)
                if self.rng.random() < 0.15:  # garden shed
                    self.building(box(a, (b + d + self.m(3, 6)) if facing == 0 else b - self.m(6, 9),
                                      self.m(2.5, 4), self.m(2.5, 4)), 0, self.pick(FLAT_ROOF_COLORS), 2.5 * PX)
                a += w + gap
        area = (u1 - u0) * (v1 - v0) / PX ** 2
        self.grove(u0, v0, u1, v1, int(self.rng.poisson(area / 500)), 1.0)
        self.clutter(u0, v0, u1, v1, int(self.rng.poisson(area / 500)))

    def block_apartments(self, u0, v0, u1, v1) -> None:
        """Long apartment buildings in parallel rows with lawns, trees and parking between them."""
        along_u = self.rng.random() < 0.5
        a0, a1, b0, b1 = (u0, u1, v0, v1) if along_u else (v0, v1, u0, u1)

        def box(a, b, da, db):
            return (a, b, a + da, b + db) if along_u else (b, a, b + db, a + da)

        b = b0 + self.m(3, 8)
        while b < b1 - 14 * PX:
            depth = self.m(11, 16)
            a = a0 + self.m(3, 8)
            while a < a1 - 15 * PX:
                length = min(self.m(25, 60), a1 - 3 * PX - a)
                ridge = 0 if self.rng.random() < 0.4 else (1 if along_u else 2)
                color = self.pick(FLAT_ROOF_COLORS if ridge == 0 else ROOF_COLORS)
                self.building(box(a, b, length, depth), ridge, color, self.m(10, 18))
                a += length + self.m(6, 15)
            b += depth + self.m(12, 22)
        area = (u1 - u0) * (v1 - v0) / PX ** 2
        self.grove(u0, v0, u1, v1, int(self.rng.poisson(area / 700)), 1.0)
        self.clutter(u0, v0, u1, v1, int(self.rng.poisson(area / 700)))

    def block_park(self, u0, v0, u1, v1) -> None:
        """Lawn, a paved path, dense tree clusters."""
        if self.rng.random() < 0.7:
            c = self.rng.uniform(u0, u1)
            self.rect((c - 1.2 * PX, v0, c + 1.2 * PX, v1), "paving", layer=1)
        area = (u1 - u0) * (v1 - v0) / PX ** 2
        self.grove(u0, v0, u1, v1, int(self.rng.poisson(area / 250)), 1.3)
        self.clutter(u0, v0, u1, v1, int(self.rng.poisson(area / 2500)), (2, 8))

    def block_parking(self, u0, v0, u1, v1) -> None:
        """A paved lot with marked bays along aisles, mostly full, trees at the edges."""
        m = 1.5 * PX
        self.rect((u0 + m, v0 + m, u1 - m, v1 - m), "asphalt", layer=1)
        bay_w, bay_l, aisle = 2.5 * PX, 5.0 * PX, 6.0 * PX
        v = v0 + 2 * m
        while v + bay_l < v1 - 2 * m:
            u = u0 + 2 * m
            while u + bay_w < u1 - 2 * m:
                self.rect((u, v, u + 0.12 * PX, v + bay_l), "marking", layer=3)
                if self.rng.random() < 0.7:
                    off = self.m(0.1, 0.5)
                    self.car((u + 0.3 * PX, v + off, u + 0.3 * PX + 1.9 * PX, v + off + 4.5 * PX), False)
                u += bay_w
            v += bay_l + (aisle if int((v - v0) / bay_l) % 2 == 0 else 0.3 * PX)
        for edge in ((u0, v0, u1, v0 + m), (u0, v1 - m, u1, v1)):
            if self.rng.random() < 0.6:
                self.grove(*edge, max(1, int((u1 - u0) / (10 * PX))), 0.4)

    def block_industrial(self, u0, v0, u1, v1) -> None:
        """Large flat roofs with rooftop units, yards with paving, clutter and cars."""
        self.rect((u0, v0, u1, v1), "paving", layer=1)
        if self.rng.random() < 0.5:
            self.rect((u0, v0, u1, v1), "asphalt", layer=1)
        for _ in range(int(self.rng.integers(1, 4))):
            w, h = min(self.m(20, 60), (u1 - u0) * 0.7), min(self.m(15, 45), (v1 - v0) * 0.7)
            bu, bv = self.rng.uniform(u0 + 2 * PX, u1 - w), self.rng.uniform(v0 + 2 * PX, v1 - h)
            if bu < u0 or bv < v0:
                continue
            color, height = self.pick(FLAT_ROOF_COLORS), self.m(7, 15)
            self.building((bu, bv, bu + w, bv + h), 0, color, height)
            for _ in range(int(self.rng.integers(0, 6))):  # rooftop units
                uw, uh = self.m(1.5, 4), self.m(1.5, 4)
                cu, cv = self.rng.uniform(bu, bu + w - uw), self.rng.uniform(bv, bv + h - uh)
                self.add("roof", 6, (cu, cv, cu + uw, cv + uh), tuple(min(255, c + 40) for c in color), "roof", 0.0)
        area = (u1 - u0) * (v1 - v0) / PX ** 2
        self.clutter(u0, v0, u1, v1, int(self.rng.poisson(area / 400)), (1.5, 7))
        for _ in range(int(self.rng.poisson(area / 600))):
            cu, cv = self.rng.uniform(u0, u1 - 5 * PX), self.rng.uniform(v0, v1 - 5 * PX)
            along_u = self.rng.random() < 0.5
            self.car((cu, cv, cu + (4.5 if along_u else 1.9) * PX, cv + (1.9 if along_u else 4.5) * PX), along_u)
        self.grove(u0, v0, u1, v1, int(self.rng.poisson(area / 3000)), 0.8)


LANDSCAPES = ("urban", "rural")


def plan_scene(width: int, height: int, seed: int = 0, landscape: str = "urban") -> ScenePlan:
    """Plan the layout of a ``width`` × ``height`` scene from ``seed`` (cheap; no pixels).

    ``urban``: a street grid with houses, apartments, parks, parking and industry;
    ``rural``: woodland (broadleaf, conifer, dead snags) and meadows on grass, dry grass, sand
    and litter, an occasional road and farmstead.
    """
    if width < 1 or height < 1:
        raise RssegError(f"scene size {width}x{height}: width and height must be positive")
    if landscape not in LANDSCAPES:
        raise RssegError(f"landscape {landscape!r}: expected one of {', '.join(LANDSCAPES)}")
    rng = np.random.default_rng([seed, 7] if landscape == "urban" else [seed, 7, LANDSCAPES.index(landscape)])
    theta = math.radians(float(rng.choice([0.0, rng.uniform(-35, 35)], p=[0.25, 0.75])))
    azimuth = math.radians(rng.uniform(-125, -55))  # shadows point up the image (north), a little sideways
    per_height = 1.0 / math.tan(math.radians(rng.uniform(38, 55)))
    plan = ScenePlan(width, height, seed, math.cos(theta), math.sin(theta),
                     (per_height * math.cos(azimuth), per_height * math.sin(azimuth)))
    corners_u, corners_v = plan.to_city(np.array([0, width, 0, width]), np.array([0, 0, height, height]))
    frame = (corners_u.min(), corners_v.min(), corners_u.max(), corners_v.max())
    if landscape == "urban":
        _Planner(plan, rng).layout(*frame)
    else:
        plan.landscape = landscape
        plan.ground = tuple((name, float(rng.uniform(0.0, 0.45))) for name in ("drygrass", "sand", "litter"))
        _Planner(plan, rng).layout_rural(*frame, conifer=float(rng.choice([0.0, 0.5, 0.95])))
    plan.bounds = _pixel_bounds(plan)
    blocks = np.floor(plan.bounds / BLOCK).astype(np.int64)
    last = ((width - 1) // BLOCK, (height - 1) // BLOCK)
    for i, (bx0, by0, bx1, by1) in enumerate(blocks.tolist()):
        for by in range(max(0, by0), min(last[1], by1) + 1):
            for bx in range(max(0, bx0), min(last[0], bx1) + 1):
                plan.buckets[by, bx].append(i)
    return plan


def _pixel_bounds(plan: ScenePlan) -> np.ndarray:
    """The image-space box (x0, y0, x1, y1) each primitive can touch, shadows included, with a margin."""
    kinds = np.array([p.kind for p in plan.prims])
    boxes = np.array([p.box for p in plan.prims], np.float64).reshape(-1, 4)
    extra = np.array([p.extra for p in plan.prims], np.float64)
    disc = (kinds == "tree") | (kinds == "treeshadow")
    xs, ys = plan.to_image(boxes[:, [0, 2, 0, 2]], boxes[:, [1, 1, 3, 3]])
    if disc.any():  # discs (centre, radius): the axis-aligned square around the crown
        cx, cy = plan.to_image(boxes[:, 0], boxes[:, 1])
        r = boxes[:, 2]
        xs[disc] = np.stack([cx - r, cx + r, cx - r, cx + r], 1)[disc]
        ys[disc] = np.stack([cy - r, cy - r, cy + r, cy + r], 1)[disc]
    height = np.select([kinds == "shadow", kinds == "treeshadow"], [extra, boxes[:, 3]], 0.0)[:, None]
    xs = np.concatenate([xs, xs + plan.shadow[0] * height], 1)  # the caster and its shadow
    ys = np.concatenate([ys, ys + plan.shadow[1] * height], 1)
    return np.stack([xs.min(1) - 2, ys.min(1) - 2, xs.max(1) + 2, ys.max(1) + 2], 1)


# ----------------------------------------------------------------------------------- rendering

@dataclass
class _Canvas:
    """Per-window paint buffers; ``x0``, ``y0`` is the window's top-left pixel in the scene."""

    x0: int
    y0: int
    color: np.ndarray  # 4 × h × w (R, G, B, NIR), 0..255
    material: np.ndarray  # h × w material id
    label: np.ndarray  # h × w class id
    shade: np.ndarray  # h × w multiplicative light
    lumps: np.ndarray  # h × w smooth noise in [-1, 1] at crown-lump scale


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """A uniform value in [0, 1) per integer lattice point (a 32-bit integer hash)."""
    h = (ix.astype(np.uint64) * np.uint64(374761393) + iy.astype(np.uint64) * np.uint64(668265263)
         + np.uint64(salt * 2246822519 % 2 ** 32)) & np.uint64(0xFFFFFFFF)
    h = ((h ^ (h >> np.uint64(13))) * np.uint64(1274126177)) & np.uint64(0xFFFFFFFF)
    h = h ^ (h >> np.uint64(16))
    return (h.astype(np.float64) / 2.0 ** 32).astype(np.float32)


def _axis_weights(start: int, n: int, cell: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Lattice index (from the first one) and smoothstep weight of each pixel along one axis."""
    pos = (np.arange(start, start + n, dtype=np.float64) + 0.5) / cell
    i = np.floor(pos).astype(np.int64)
    f = (pos - i).astype(np.float32)
    return i - i[0], f * f * (3 - 2 * f), int(i[0])


def value_noise(x0: int, y0: int, w: int, h: int, cell: float, salt: int) -> np.ndarray:
    """Smooth noise in [-1, 1] on a lattice of ``cell`` pixels, a function of scene position only."""
    ix, fx, bx = _axis_weights(x0, w, cell)
    iy, fy, by = _axis_weights(y0, h, cell)
    gx, gy = np.meshgrid(np.arange(bx, bx + ix[-1] + 2), np.arange(by, by + iy[-1] + 2))
    lattice = _hash01(gx + 1_000_000, gy + 1_000_000, salt) * 2 - 1
    rows = lattice[iy] * (1 - fy)[:, None] + lattice[iy + 1] * fy[:, None]
    return rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx


def _paint(canvas: _Canvas, mask: np.ndarray, sl, material: str, color: tuple[int, ...]) -> None:
    """Set material, class and full light under ``mask``; the colour is the material's own if it has one."""
    mid = MATERIAL_IDS[material]
    canvas.material[sl][mask] = mid
    canvas.label[sl][mask] = _LABEL_OF[mid]
    canvas.shade[sl][mask] = 1.0
    color = _FIELD_BASE.get(material, color)
    np.copyto(canvas.color[(slice(None), *sl)], np.asarray(color, np.float32)[:, None, None], where=mask[None])


def _local(plan: ScenePlan, canvas: _Canvas, bounds) -> tuple | None:
    """Slices of the canvas inside ``bounds`` and the city-frame coordinates of their pixels."""
    h, w = canvas.label.shape
    x0, y0, x1, y1 = bounds
    c0, c1 = max(0, int(math.floor(x0)) - canvas.x0), min(w, int(math.ceil(x1)) - canvas.x0)
    r0, r1 = max(0, int(math.floor(y0)) - canvas.y0), min(h, int(math.ceil(y1)) - canvas.y0)
    if c0 >= c1 or r0 >= r1:
        return None
    xs = np.arange(c0 + canvas.x0, c1 + canvas.x0, dtype=np.float32) + 0.5
    ys = np.arange(r0 + canvas.y0, r1 + canvas.y0, dtype=np.float32) + 0.5
    u, v = plan.to_city(xs[None, :], ys[:, None])
    return (slice(r0, r1), slice(c0, c1)), u, v


def _in_box(u, v, box) -> np.ndarray:
    return (u >= box[0]) & (u < box[2]) & (v >= box[1]) & (v < box[3])


def _draw_rect(plan, canvas, prim, sl, u, v) -> None:
    _paint(canvas, _in_box(u, v, prim.box), sl, prim.material, prim.color)


def _sun_city(plan: ScenePlan) -> tuple[float, float]:
    """Unit vector towards the sun in the city frame (opposite to the shadows)."""
    sx, sy = plan.shadow
    n = math.hypot(sx, sy)
    su, sv = plan.to_city(np.array(-sx / n), np.array(-sy / n))
    return float(su), float(sv)


def _draw_roof(plan, canvas, prim, sl, u, v) -> None:
    """Flat roofs: even light, a darker parapet; gables: two pitched halves lit by the sun, a ridge."""
    mask = _in_box(u, v, prim.box)
    if not mask.any():
        return
    _paint(canvas, mask, sl, "roof", prim.color)
    u0, v0, u1, v1 = prim.box
    if prim.extra == 0:
        edge = np.minimum(np.minimum(u - u0, u1 - u), np.minimum(v - v0, v1 - v))
        light = np.where(edge < 0.4 * PX, 0.8, 1.0)
    else:
        along_u = prim.extra == 1
        across = (v - (v0 + v1) / 2) / ((v1 - v0) / 2) if along_u else (u - (u0 + u1) / 2) / ((u1 - u0) / 2)
        su, sv = _sun_city(plan)
        facing = sv if along_u else su  # how much the +side faces the sun
        light = np.where(across >= 0, 1.0 + 0.22 * facing, 1.0 - 0.22 * facing) * 0.95
        light = np.where(np.abs(across) < 0.035, 1.15, light)  # ridge
        light = np.where(np.abs(across) > 0.97, 0.8, light)  # eaves
    canvas.shade[sl] = np.where(mask, light, canvas.shade[sl])


def _draw_car(plan, canvas, prim, sl, u, v) -> None:
    """Rounded body, dark windscreens front and back, a lighter roof."""
    u0, v0, u1, v1 = prim.box
    t = (u - u0) / (u1 - u0) if prim.extra == 1 else (v - v0) / (v1 - v0)  # along the car, 0..1
    s = (v - v0) / (v1 - v0) if prim.extra == 1 else (u - u0) / (u1 - u0)  # across it, 0..1
    corner = ((np.minimum(t, 1 - t) * 4.5 - 0.3) ** 2 + (np.minimum(s, 1 - s) * 1.9 - 0.3) ** 2 > 0.09) & \
        (np.minimum(t, 1 - t) * 4.5 < 0.3) & (np.minimum(s, 1 - s) * 1.9 < 0.3)  # 0.3 m rounding
    mask = _in_box(u, v, prim.box) & ~corner
    if not mask.any():
        return
    _paint(canvas, mask, sl, "car", prim.color)
    glass = (np.abs(s - 0.5) < 0.4) & (((t > 0.24) & (t < 0.38)) | ((t > 0.74) & (t < 0.84)))
    light = np.where(glass, 0.4, np.where((t >= 0.38) & (t <= 0.74) & (np.abs(s - 0.5) < 0.42), 1.08, 1.0))
    canvas.shade[sl] = np.where(mask, light, canvas.shade[sl])


def _draw_shadow(plan, canvas, prim, sl, u, v) -> None:
    """Darken what the box sweeps when moved along the shadow direction (not roofs, not the caster)."""
    du, dv = plan.to_city(np.array(plan.shadow[0] * prim.extra), np.array(plan.shadow[1] * prim.extra))
    du, dv = float(du), float(dv)
    u0, v0, u1, v1 = prim.box
    lo, hi = np.zeros_like(u), np.ones_like(u)
    for p, a, b, d in ((u, u0, u1, du), (v, v0, v1, dv)):  # solve a <= p - t d < b for t in [0, 1]
        if abs(d) < 1e-6:
            inside = (p >= a) & (p < b)
            hi = np.where(inside, hi, -1.0)
        else:
            t1, t2 = (p - b) / d, (p - a) / d
            lo, hi = np.maximum(lo, np.minimum(t1, t2)), np.minimum(hi, np.maximum(t1, t2))
    mask = (lo <= hi) & (canvas.label[sl] != BUILDING) & ~_in_box(u, v, prim.box)
    canvas.shade[sl] = np.where(mask, canvas.shade[sl] * 0.48, canvas.shade[sl])


def _draw_treeshadow(plan, canvas, prim, sl, u, v) -> None:
    """The crown's shadow: a capsule from part-way up the trunk's shadow to the crown top's."""
    cu, cv, r, h = prim.box
    du, dv = (float(d) for d in plan.to_city(np.array(plan.shadow[0] * h), np.array(plan.shadow[1] * h)))
    t = np.clip(((u - cu) * du + (v - cv) * dv) / max(du * du + dv * dv, 1e-6), 0.35, 1.0)
    mask = (u - cu - t * du) ** 2 + (v - cv - t * dv) ** 2 < (r * 0.9) ** 2
    mask &= canvas.label[sl] != BUILDING
    canvas.shade[sl] = np.where(mask, canvas.shade[sl] * 0.5, canvas.shade[sl])


def _draw_tree(plan, canvas, prim, sl, u, v) -> None:
    """A round crown lit as a hemisphere from the sun, darker at its rim (label Tree where it overhangs)."""
    cu, cv, r, _ = prim.box
    du, dv = (u - cu) / r, (v - cv) / r
    d2 = du * du + dv * dv
    edge = 1.0 + 0.14 * canvas.lumps[sl]
    crown = CROWNS[int(prim.extra)]
    if crown != "round":  # a star of branches: seven for conifers, five thin bare ones for snags
        angle = np.arctan2(dv, du) + cu % 6.283
        if crown == "conifer":
            edge = edge + 0.22 * np.cos(7 * angle)
        else:
            edge = np.where((np.abs(np.sin(2.5 * angle)) < 0.3) | (d2 < 0.04), edge, 0.0)
    mask = d2 < edge ** 2
    if not mask.any():
        return
    _paint(canvas, mask, sl, "tree", prim.color)
    su, sv = _sun_city(plan)
    up = np.sqrt(np.maximum(0.0, 1.0 - np.minimum(d2, 1.0)))
    lambert = 0.55 * (du * su + dv * sv) + 0.83 * up  # sun about 56 degrees high
    light = 0.45 + 0.75 * np.clip(lambert, 0.0, 1.0)
    canvas.shade[sl] = np.where(mask, light, canvas.shade[sl])


_DRAW: dict[str, Callable] = {"rect": _draw_rect, "roof": _draw_roof, "car": _draw_car, "shadow": _draw_shadow,
                              "treeshadow": _draw_treeshadow, "tree": _draw_tree}


def _blur(img: np.ndarray) -> np.ndarray:
    """Separable 3-tap optical blur (sigma about 0.6 px); the output loses one pixel on each side."""
    rows = img[:, :-2] + img[:, 2:]
    rows *= 0.2
    rows += 0.6 * img[:, 1:-1]
    out = rows[:, :, :-2] + rows[:, :, 2:]
    out *= 0.2
    out += 0.6 * rows[:, :, 1:-1]
    return out




def render_window(plan: ScenePlan, window: Window, bands: str = "RGB") -> tuple[np.ndarray, np.ndarray]:
    """Render a window of the scene: a 3 × h × w uint8 image (``RGB`` or ``IRRG``) and its h × w labels."""
    if bands not in ("RGB", "IRRG"):
        raise RssegError(f"bands {bands!r}: expected RGB or IRRG")
    col0, row0, w, h = int(window.col_off), int(window.row_off), int(window.width), int(window.height)
    x0, y0, pw, ph = col0 - 1, row0 - 1, w + 2, h + 2  # one pixel of margin for the blur
    seed_salt = plan.seed * 7919
    big = value_noise(x0, y0, pw, ph, 300.0, seed_salt + 1) * 0.5 + 0.5
    ys, xs = np.arange(y0, y0 + ph) % _PERIOD, np.arange(x0, x0 + pw) % _PERIOD
    noise = [value_noise(x0, y0, pw, ph, cell, seed_salt + 10 + k) for k, cell in enumerate(_NOISE_CELLS)]
    noise.append(_GRAIN.take(ys, axis=0).take(xs, axis=1))
    grass = np.asarray(_FIELD_BASE["grass"], np.float32)
    canvas = _Canvas(x0, y0, np.broadcast_to(grass[:, None, None], (4, ph, pw)).copy(), np.zeros((ph, pw), np.uint8),
                     np.full((ph, pw), LOWVEG, np.uint8), np.ones((ph, pw), np.float32), noise[1])
    for k, (material, share) in enumerate(plan.ground):  # patches of open ground, as large-scale noise
        patches = 0.7 * value_noise(x0, y0, pw, ph, 260.0, seed_salt + 20 + k) + \
            0.3 * value_noise(x0, y0, pw, ph, 50.0, seed_salt + 30 + k)
        _paint(canvas, patches > 0.6 - 1.6 * share, (slice(None), slice(None)), material, (0, 0, 0, 0))
    ids = sorted({i for by in range(y0 // BLOCK, (y0 + ph - 1) // BLOCK + 1)
                  for bx in range(x0 // BLOCK, (x0 + pw - 1) // BLOCK + 1) for i in plan.buckets.get((by, bx), ())})
    for i in sorted(ids, key=lambda i: plan.prims[i].layer):
        prim = plan.prims[i]
        local = _local(plan, canvas, plan.bounds[i])
        if local is not None:
            _DRAW[prim.kind](plan, canvas, prim, *local)
    mat = canvas.material
    light = canvas.shade * (1 + sum(_TEXTURE[mat, k] * field_k for k, field_k in enumerate(noise)))
    order = (0, 1, 2) if bands == "RGB" else (3, 0, 1)
    img = np.empty((3, ph, pw), np.float32)
    for j, band in enumerate(order):
        img[j] = (canvas.color[band] + _FIELD_SHIFT[band][mat] * big) * light
    img = _blur(img)
    img += _SENSOR[list(order)].take(ys[1:-1], axis=1).take(xs[1:-1], axis=2)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), canvas.label[1:-1, 1:-1].copy()


def iter_blocks(plan: ScenePlan, bands: str = "RGB", factor: float = 1.0
                ) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """Render the scene block-row by block-row, each row as 512-wide pieces joined together.

    ``factor`` > 1 yields the scene at ``factor`` times coarser pixels: each output row band is
    rendered at the generator's resolution, box-averaged (image) and centre-sampled (labels).
    """
    out_w, out_h = math.floor(plan.width / factor), math.floor(plan.height / factor)
    for row0 in range(0, out_h, BLOCK):
        h = min(BLOCK, out_h - row0)
        src0, src1 = round(row0 * factor), min(plan.height, round((row0 + h) * factor))
        img = np.empty((3, src1 - src0, plan.width), np.uint8)
        lab = np.empty((src1 - src0, plan.width), np.uint8)
        for col0 in range(0, plan.width, BLOCK):
            w = min(BLOCK, plan.width - col0)
            img[:, :, col0:col0 + w], lab[:, col0:col0 + w] = render_window(
                plan, Window(col0, src0, w, src1 - src0), bands)
        if factor != 1.0:
            cols = np.minimum(((np.arange(out_w) + 0.5) * factor).astype(int), plan.width - 1)
            rows = np.minimum(((np.arange(row0, row0 + h) + 0.5) * factor).astype(int) - src0, src1 - src0 - 1)
            lab = lab[rows][:, cols]
            covered = torch.from_numpy(img[:, :, :round(out_w * factor)]).float()
            pooled = torch.nn.functional.adaptive_avg_pool2d(covered, (h, out_w))
            img = pooled.round().clamp(0, 255).to(torch.uint8).numpy()
        yield Window(0, row0, out_w, h), img, lab


def scene_transform(gsd: float = GSD):
    """The georeference of a generated scene: UTM 32N, ``gsd`` metre pixels (0.09 by default), north-up."""
    return Affine(gsd, 0.0, ORIGIN[0], 0.0, -gsd, ORIGIN[1])


def write_scene(image_path: str | Path, labels_path: str | Path | None, width: int, height: int, seed: int = 0,
                bands: str = "RGB", compress: str = "deflate", quality: int = 90, overwrite: bool = False,
                progress: bool = True, landscape: str = "urban", gsd: float = GSD) -> ScenePlan:
    """Generate a scene and write it as tiled, compressed GeoTIFFs (image and, optionally, labels).

    ``compress`` is ``deflate`` (lossless), ``jpeg`` (YCbCr, ``quality``) or ``webp`` for the image;
    labels are always deflate-compressed uint8 class ids with the ISPRS class names and colormap.
    ``landscape`` is ``urban`` or ``rural`` (see :func:`plan_scene`); ``gsd`` (metres, at least the
    generator's 0.09) renders the same ground at coarser pixels: ``width`` × ``height`` pixels of ``gsd``.
    """
    if compress not in ("deflate", "jpeg", "webp"):
        raise RssegError(f"{image_path}: unknown compression {compress!r} (deflate, jpeg or webp)")
    if gsd < GSD:
        raise RssegError(f"{image_path}: gsd {gsd:g} m is finer than the generator's {GSD:g} m")
    factor = gsd / GSD
    plan = plan_scene(math.ceil(width * factor), math.ceil(height * factor), seed, landscape)
    common = dict(driver="GTiff", width=width, height=height, crs=CRS, transform=scene_transform(gsd),
                  tiled=True, blockxsize=BLOCK, blockysize=BLOCK, dtype="uint8")
    image_opts = {"deflate": dict(compress="deflate", predictor=2),
                  "jpeg": dict(compress="jpeg", photometric="ycbcr", jpeg_quality=quality),
                  "webp": dict(compress="webp", webp_level=quality)}[compress]
    with contextlib.ExitStack() as stack:
        tmp_image = stack.enter_context(atomic_output(image_path, overwrite))
        tmp_labels = stack.enter_context(atomic_output(labels_path, overwrite)) if labels_path else None
        img_ds = stack.enter_context(rasterio.open(tmp_image, "w", count=3, **common, **image_opts))
        img_ds.descriptions = ("red", "green", "blue") if bands == "RGB" else ("nir", "red", "green")
        lab_ds = None
        if tmp_labels:
            lab_ds = stack.enter_context(rasterio.open(tmp_labels, "w", count=1, nodata=255, compress="deflate",
                                                       **common))
            write_class_table(lab_ds, list(ISPRS.names), list(ISPRS.colors))
        rows = tqdm(iter_blocks(plan, bands, factor), total=math.ceil(height / BLOCK), unit="row",
                    desc=f"generating {Path(image_path).name}", disable=not progress)
        for window, img, lab in rows:
            img_ds.write(img, window=window)
            if lab_ds:
                lab_ds.write(lab, 1, window=window)
    return plan
