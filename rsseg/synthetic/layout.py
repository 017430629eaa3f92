"""Laying out a scene from a seed: a street grid with city blocks, or rural stands and farmsteads."""

from __future__ import annotations

import math

import numpy as np

from rsseg.errors import RssegError
from rsseg.synthetic.materials import (
    BLOCK,
    CAR_COLORS,
    CLUTTER_COLORS,
    CONIFER_COLORS,
    CROWNS,
    FLAT_ROOF_COLORS,
    PX,
    ROOF_COLORS,
    SNAG_COLORS,
    TREE_COLORS,
)
from rsseg.synthetic.plan import Prim, ScenePlan


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


LANDSCAPES = ("urban", "rural", "suburban", "industrial")


def plan_scene(width: int, height: int, seed: int = 0, landscape: str = "urban") -> ScenePlan:
    """Plan the layout of a ``width`` × ``height`` scene from ``seed`` (cheap; no pixels).

    ``urban``: a street grid with houses, apartments, parks, parking and industry;
    ``rural``: woodland (broadleaf, conifer, dead snags) and meadows on grass, dry grass, sand
    and litter, an occasional road and farmstead; ``suburban`` and ``industrial``: the street grid
    with small walled lots, sheds, yards, sports grounds and building sites
    (:mod:`~rsseg.synthetic.districts`).
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
    elif landscape in ("suburban", "industrial"):
        from rsseg.synthetic.districts import GROUND, DistrictPlanner  # it builds on this module's _Planner

        plan.landscape, plan.ground = landscape, tuple((name, float(rng.uniform(0.0, top)))
                                                       for name, top in GROUND[landscape])
        DistrictPlanner(plan, rng, landscape).layout(*frame)
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
