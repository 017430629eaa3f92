"""Drawing primitives into a window's paint buffers: material, class, colour and light per pixel."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rsseg.synthetic.materials import BUILDING, CROWNS, FIELD_BASE, LABEL_OF, MATERIAL_IDS, PX
from rsseg.synthetic.plan import ScenePlan


@dataclass
class Canvas:
    """Per-window paint buffers; ``x0``, ``y0`` is the window's top-left pixel in the scene."""

    x0: int
    y0: int
    color: np.ndarray  # 4 × h × w (R, G, B, NIR), 0..255
    material: np.ndarray  # h × w material id
    label: np.ndarray  # h × w class id
    shade: np.ndarray  # h × w multiplicative light
    lumps: np.ndarray  # h × w smooth noise in [-1, 1] at crown-lump scale


def paint(canvas: Canvas, mask: np.ndarray, sl, material: str, color: tuple[int, ...]) -> None:
    """Set material, class and full light under ``mask``; the colour is the material's own if it has one."""
    mid = MATERIAL_IDS[material]
    canvas.material[sl][mask] = mid
    canvas.label[sl][mask] = LABEL_OF[mid]
    canvas.shade[sl][mask] = 1.0
    color = FIELD_BASE.get(material, color)
    np.copyto(canvas.color[(slice(None), *sl)], np.asarray(color, np.float32)[:, None, None], where=mask[None])


def local_pixels(plan: ScenePlan, canvas: Canvas, bounds) -> tuple | None:
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
    paint(canvas, _in_box(u, v, prim.box), sl, prim.material, prim.color)


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
    paint(canvas, mask, sl, prim.material, prim.color)
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
    if prim.material in ROOF_RELIEF:
        light = light * ROOF_RELIEF[prim.material](u, v, prim.extra)
    canvas.shade[sl] = np.where(mask, light, canvas.shade[sl])


def _stripes(pos: np.ndarray, period_m: float, duty: float) -> np.ndarray:
    """True on the first ``duty`` of every ``period_m`` metres along ``pos`` (pixels)."""
    return np.mod(pos / (period_m * PX), 1.0) < duty


def _tile_relief(u, v, ridge: float) -> np.ndarray:
    """Clay or concrete tiles: courses parallel to the ridge with a shadowed lower lip, staggered joints."""
    across, along = (v, u) if ridge != 2 else (u, v)
    course = np.floor(across / (0.34 * PX))
    joint = _stripes(along + course * 0.13 * PX, 0.26, 0.14)
    return np.where(_stripes(across, 0.34, 0.22), 0.8, np.where(joint, 0.9, 1.0))


def _metal_relief(u, v, ridge: float) -> np.ndarray:
    """Corrugated or trapezoidal sheets: ribs running down the slope, a sheet joint every few metres."""
    along = u if ridge != 2 else v
    ribs = np.where(_stripes(along, 0.5, 0.3), 1.12, 0.96)
    return np.where(_stripes(along + 0.1 * PX, 5.2, 0.02), 0.85, ribs)


ROOF_RELIEF: dict[str, Callable] = {"tiles": _tile_relief, "metal": _metal_relief}


def _draw_panels(plan, canvas, prim, sl, u, v) -> None:
    """Photovoltaic modules (about 1 × 1.7 m) in bright frames: a field on a pitched roof, rows on a flat one."""
    a, b = (u - prim.box[0], v - prim.box[1]) if prim.extra != 2 else (v - prim.box[1], u - prim.box[0])
    mask = _in_box(u, v, prim.box) & ((prim.extra != 3) | _stripes(b, 3.6, 0.48))
    if not mask.any():
        return
    paint(canvas, mask, sl, "solar", prim.color)
    frame = _stripes(a, 1.02, 0.05) | _stripes(b, 1.72, 0.03)
    cells = _stripes(a, 0.17, 0.1) | _stripes(b, 0.17, 0.1)
    light = np.where(frame, 1.9, np.where(cells, 1.15, 1.0))
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
    paint(canvas, mask, sl, "car", prim.color)
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


def _draw_shade(plan, canvas, prim, sl, u, v) -> None:
    """Dim the light in a box by ``extra`` (the dusk under a closed stand, between its crowns)."""
    mask = _in_box(u, v, prim.box)
    canvas.shade[sl] = np.where(mask, canvas.shade[sl] * prim.extra, canvas.shade[sl])


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
    paint(canvas, mask, sl, "tree", prim.color)
    su, sv = _sun_city(plan)
    up = np.sqrt(np.maximum(0.0, 1.0 - np.minimum(d2, 1.0)))
    lambert = 0.55 * (du * su + dv * sv) + 0.83 * up  # sun about 56 degrees high
    light = 0.45 + 0.75 * np.clip(lambert, 0.0, 1.0)
    canvas.shade[sl] = np.where(mask, light, canvas.shade[sl])


DRAW: dict[str, Callable] = {"rect": _draw_rect, "roof": _draw_roof, "car": _draw_car, "shadow": _draw_shadow,
                              "treeshadow": _draw_treeshadow, "tree": _draw_tree, "panels": _draw_panels,
                              "shade": _draw_shade}
