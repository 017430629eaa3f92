"""Rendering any window of a planned scene, and the whole scene block-row by block-row."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from rasterio.windows import Window

from rsseg.errors import RssegError
from rsseg.synthetic.draw import DRAW, Canvas, local_pixels, paint
from rsseg.synthetic.materials import BLOCK, FIELD_BASE, FIELD_SHIFT, LOWVEG, TEXTURE
from rsseg.synthetic.noise import GRAIN, NOISE_CELLS, PERIOD, SENSOR, value_noise
from rsseg.synthetic.plan import ScenePlan


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
    ys, xs = np.arange(y0, y0 + ph) % PERIOD, np.arange(x0, x0 + pw) % PERIOD
    noise = [value_noise(x0, y0, pw, ph, cell, seed_salt + 10 + k) for k, cell in enumerate(NOISE_CELLS)]
    noise.append(GRAIN.take(ys, axis=0).take(xs, axis=1))
    grass = np.asarray(FIELD_BASE["grass"], np.float32)
    canvas = Canvas(x0, y0, np.broadcast_to(grass[:, None, None], (4, ph, pw)).copy(), np.zeros((ph, pw), np.uint8),
                     np.full((ph, pw), LOWVEG, np.uint8), np.ones((ph, pw), np.float32), noise[1])
    for k, (material, share) in enumerate(plan.ground):  # patches of open ground, as large-scale noise
        patches = 0.7 * value_noise(x0, y0, pw, ph, 260.0, seed_salt + 20 + k) + \
            0.3 * value_noise(x0, y0, pw, ph, 50.0, seed_salt + 30 + k)
        paint(canvas, patches > 0.6 - 1.6 * share, (slice(None), slice(None)), material, (0, 0, 0, 0))
    ids = sorted({i for by in range(y0 // BLOCK, (y0 + ph - 1) // BLOCK + 1)
                  for bx in range(x0 // BLOCK, (x0 + pw - 1) // BLOCK + 1) for i in plan.buckets.get((by, bx), ())})
    for i in sorted(ids, key=lambda i: plan.prims[i].layer):
        prim = plan.prims[i]
        local = local_pixels(plan, canvas, plan.bounds[i])
        if local is not None:
            DRAW[prim.kind](plan, canvas, prim, *local)
    mat = canvas.material
    light = canvas.shade * (1 + sum(TEXTURE[mat, k] * field_k for k, field_k in enumerate(noise)))
    order = (0, 1, 2) if bands == "RGB" else (3, 0, 1)
    img = np.empty((3, ph, pw), np.float32)
    for j, band in enumerate(order):
        img[j] = (canvas.color[band] + FIELD_SHIFT[band][mat] * big) * light
    img = _blur(img)
    img += SENSOR[list(order)].take(ys[1:-1], axis=1).take(xs[1:-1], axis=2)
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
