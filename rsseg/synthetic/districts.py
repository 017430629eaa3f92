"""Suburban and industrial districts: small lots behind walls, sheds, yards, sports grounds, building sites.

The street grid is the urban one (:mod:`~rsseg.synthetic.layout`); the blocks between the
streets, the roofs (clay and concrete tiles, corrugated metal, gravel, concrete, solar panels) and
the cars (mostly white, grey, black and silver, about 4.5 × 1.8 m) are this module's.
"""

from __future__ import annotations

from rsseg.synthetic.layout import _Planner
from rsseg.synthetic.materials import (
    CONCRETE_COLORS,
    GRAVEL_COLORS,
    METAL_COLORS,
    PX,
    REAL_CAR_COLORS,
    TILE_COLORS,
)

BLOCK_KINDS = {  # landscape: block kind -> weight
    "suburban": {"lots": 0.42, "houses": 0.1, "apartments": 0.05, "park": 0.05, "parking": 0.04, "sports": 0.07,
                 "construction": 0.05, "stand": 0.07, "commercial": 0.06, "sheds": 0.05, "soil": 0.04},
    "industrial": {"sheds": 0.42, "commercial": 0.14, "parking": 0.08, "construction": 0.1, "soil": 0.06,
                   "stand": 0.06, "lots": 0.1, "sports": 0.04},
}
GROUND = {"suburban": (("soil", 0.12), ("drygrass", 0.3)), "industrial": (("soil", 0.3), ("drygrass", 0.4))}
CONTAINER_COLORS = [(150, 52, 40, 140), (40, 82, 140, 80), (196, 196, 190, 190), (70, 110, 70, 90),
                    (210, 150, 40, 170)]


class DistrictPlanner(_Planner):
    """The urban street grid with suburban or industrial blocks and real roof materials and cars."""

    def __init__(self, plan, rng, landscape: str):
        super().__init__(plan, rng)
        self.kinds = BLOCK_KINDS[landscape]

    def block(self, u0: float, v0: float, u1: float, v1: float) -> None:
        if u1 - u0 < 12 * PX or v1 - v0 < 12 * PX:
            if u1 > u0 and v1 > v0:
                self.grove(u0, v0, u1, v1, 1, 0.8)
            return
        names = list(self.kinds)
        kind = self.rng.choice(names, p=[self.kinds[k] for k in names])
        getattr(self, f"block_{kind}")(u0, v0, u1, v1)

    def car(self, box, along_u: bool) -> None:
        """A car in a real car's colour, a little shorter or narrower than the box at random."""
        u0, v0, u1, v1 = box
        shrink = self.m(0, 0.3)
        box = (u0, v0, u1 - shrink, v1 - self.m(0, 0.12)) if along_u else (u0, v0, u1 - self.m(0, 0.12), v1 - shrink)
        self.add("car", 4, box, self.pick(REAL_CAR_COLORS), "car", 1.0 if along_u else 2.0)
        self.add("shadow", 5, box, extra=1.3 * PX)

    def building(self, box, ridge: int, color, height: float) -> None:
        """A roof of a real material (chosen from its pitch and size), its shadow, sometimes solar panels."""
        area = (box[2] - box[0]) * (box[3] - box[1]) / PX ** 2
        if ridge and area > 500:
            material = "metal"
        elif ridge:
            material = "tiles" if self.rng.random() < 0.94 else "metal"
        else:
            material = "gravel" if self.rng.random() < 0.5 else "concrete"
        palette = {"metal": METAL_COLORS, "gravel": GRAVEL_COLORS, "concrete": CONCRETE_COLORS}.get(
            material, TILE_COLORS if self.rng.random() < 0.7 else CONCRETE_COLORS)
        tint = self.rng.uniform(0.9, 1.1)
        color = tuple(int(min(255, c * tint)) for c in self.pick(palette))
        self.add("shadow", 5, box, extra=height)
        self.add("roof", 6, box, color, material, float(ridge))
        if self.rng.random() < (0.25 if ridge and area < 300 else 0.1) and area > 40:
            self.panels(box, ridge)

    def panels(self, box, ridge: int) -> None:
        """An array of solar modules on one half of a gabled roof, or in rows on a flat one."""
        u0, v0, u1, v1 = box
        inset = 0.7 * PX
        if ridge == 1:
            half = self.pick([(u0, v0, u1, (v0 + v1) / 2), (u0, (v0 + v1) / 2, u1, v1)])
        elif ridge == 2:
            half = self.pick([(u0, v0, (u0 + u1) / 2, v1), ((u0 + u1) / 2, v0, u1, v1)])
        else:
            half = box
        a0, b0, a1, b1 = half[0] + inset, half[1] + inset, half[2] - inset, half[3] - inset
        if a1 - a0 < 2 * PX or b1 - b0 < 2 * PX:
            return
        cut = self.rng.uniform(0.5, 1.0)
        self.add("panels", 7, (a0, b0, a0 + (a1 - a0) * cut, b1), (0, 0, 0, 0), "solar", float(ridge or 3))

    def wall(self, box) -> None:
        """A garden wall or fence (about 0.25 m wide, 1.8 m high) and its shadow."""
        self.add("shadow", 5, box, extra=1.8 * PX)
        self.rect(box, "wall", layer=3)

    def block_lots(self, u0, v0, u1, v1) -> None:
        """Dense small lots back to back: a house each, narrow gaps, walls between lots, small gardens."""
        along_u = (u1 - u0) >= (v1 - v0)
        a0, a1, b0, b1 = (u0, u1, v0, v1) if along_u else (v0, v1, u0, u1)

        def box(a, b, da, db):
            return (a, b, a + da, b + db) if along_u else (b, a, b + db, a + da)

        rows, b = [], b0  # rows of lots back to back, a lane behind every second row
        while b1 - b > 14 * PX:
            depth = self.m(18, 28) if b1 - b > 44 * PX else b1 - b
            rows.append((b, depth, len(rows) % 2))
            b += depth
            if len(rows) % 2 == 0 and b1 - b > 30 * PX:
                lane = self.m(4, 6)
                self.street(box(a0, b + 2 * PX, a1 - a0, lane), along_u, walk=2 * PX)
                b += lane + 4 * PX
        ridge = 1 if along_u else 2
        thick = 0.25 * PX
        for row_b, row_d, facing in rows:
            self.wall(box(a0, row_b + (row_d - thick if facing == 0 else 0), a1 - a0, thick))
            a = a0 + self.m(0, 3)
            while a < a1 - 8 * PX:
                lot = min(self.m(9, 16), a1 - a)
                self.wall(box(a, row_b, thick, row_d))
                setback = self.m(1.5, 5)
                d = min(self.m(8, 12), row_d - setback - 2 * PX)
                w = lot - self.m(1.0, 3.5)
                if d > 5 * PX and w > 5 * PX:
                    b = row_b + setback if facing == 0 else row_b + row_d - setback - d
                    self.building(box(a + thick, b, w, d), ridge if self.rng.random() < 0.85 else 0, None,
                                  self.m(5, 9))
                    self.garden(box, a + thick, lot - thick, row_b, row_d, setback, d, facing)
                a += lot
        self.clutter(u0, v0, u1, v1, int(self.rng.poisson((u1 - u0) * (v1 - v0) / PX ** 2 / 400)))

    def garden(self, box, a, lot, row_b, row_d, setback, d, facing) -> None:
        """Front paving with a car, a back garden: lawn, patio, sometimes a pool, soil or a small tree."""
        front = (row_b, setback) if facing == 0 else (row_b + row_d - setback, setback)
        self.rect(box(a, front[0], min(3 * PX, lot), front[1]), "paving", layer=1)
        if self.rng.random() < 0.55 and setback > 4.8 * PX:
            db = front[0] + 0.2 * PX
            self.car(box(a + 0.5 * PX, db, 1.85 * PX, 4.5 * PX), False)
        back0 = row_b + setback + d if facing == 0 else row_b
        back = row_d - setback - d
        if back < 3 * PX:
            return
        pick = self.rng.random()
        if pick < 0.12 and back > 8 * PX and lot > 8 * PX:
            pw, pd = self.m(3, 5), self.m(5, 8)
            self.rect(box(a + 1 * PX, back0 + (back - pd) / 2, pw + 1.6 * PX, pd + 1.6 * PX), "paving", layer=1)
            self.rect(box(a + 1.8 * PX, back0 + (back - pd) / 2 + 0.8 * PX, pw, pd), "pool", layer=2)
        elif pick < 0.25:
            self.rect(box(a, back0, lot, back), "soil", layer=1)
        elif pick < 0.6:
            self.rect(box(a, back0 + (0 if facing == 0 else back - 3 * PX), lot, 3 * PX), "paving", layer=1)
        if self.rng.random() < 0.4:
            cb = back0 + back / 2
            self.tree(*box(a + lot / 2, cb, 0, 0)[:2], self.m(1.2, 3.0))

    def block_sheds(self, u0, v0, u1, v1) -> None:
        """Long metal sheds (ridged or flat) on yards of concrete, asphalt or gravel; trucks, containers, cars."""
        self.rect((u0, v0, u1, v1), self.pick(["yard", "asphalt", "paving"]), layer=1)
        along_u = (u1 - u0) >= (v1 - v0)
        for _ in range(int(self.rng.integers(1, 4))):
            long, short = self.m(40, 140), self.m(16, 40)
            w, h = (long, short) if along_u else (short, long)
            w, h = min(w, (u1 - u0) - 4 * PX), min(h, (v1 - v0) - 4 * PX)
            if w < 10 * PX or h < 8 * PX:
                continue
            bu = self.rng.uniform(u0 + 2 * PX, u1 - w - 2 * PX + 1)
            bv = self.rng.uniform(v0 + 2 * PX, v1 - h - 2 * PX + 1)
            ridge = (1 if along_u else 2) if self.rng.random() < 0.6 else 0
            self.building((bu, bv, bu + w, bv + h), ridge, None, self.m(7, 14))
        self.loads(u0, v0, u1, v1)

    def loads(self, u0, v0, u1, v1) -> None:
        """Containers and trailers (Clutter), parked cars, heaps, on a yard."""
        area = (u1 - u0) * (v1 - v0) / PX ** 2
        for _ in range(int(self.rng.poisson(area / 700))):
            along_u = self.rng.random() < 0.5
            length, width = self.pick([(6.1, 2.45), (12.2, 2.45), (13.6, 2.55)])
            du, dv = (length, width) if along_u else (width, length)
            if u1 - u0 < du * PX + 1 or v1 - v0 < dv * PX + 1:
                continue
            cu, cv = self.rng.uniform(u0, u1 - du * PX), self.rng.uniform(v0, v1 - dv * PX)
            self.add("shadow", 5, (cu, cv, cu + du * PX, cv + dv * PX), extra=2.6 * PX)
            self.rect((cu, cv, cu + du * PX, cv + dv * PX), "clutter", layer=3, color=self.pick(CONTAINER_COLORS))
        for _ in range(int(self.rng.poisson(area / 500))):
            cu, cv = self.rng.uniform(u0, u1 - 5 * PX), self.rng.uniform(v0, v1 - 5 * PX)
            along_u = self.rng.random() < 0.5
            self.car((cu, cv, cu + (4.6 if along_u else 1.85) * PX, cv + (1.85 if along_u else 4.6) * PX), along_u)
        self.clutter(u0, v0, u1, v1, int(self.rng.poisson(area / 600)), (1.5, 6))

    def block_commercial(self, u0, v0, u1, v1) -> None:
        """A large flat-roofed store or office with rooftop units behind a car park."""
        w, h = (u1 - u0) * self.rng.uniform(0.4, 0.7), (v1 - v0) * self.rng.uniform(0.4, 0.7)
        self.block_parking(u0, v0, u1, v1)
        bu, bv = u1 - w - 2 * PX, v0 + 2 * PX
        self.rect((bu - 2 * PX, bv - 2 * PX, u1, bv + h + 2 * PX), "paving", layer=2)
        self.building((bu, bv, bu + w, bv + h), 0, None, self.m(6, 12))
        for _ in range(int(self.rng.integers(0, 8))):
            uw, uh = self.m(1.5, 4), self.m(1.5, 4)
            cu, cv = self.rng.uniform(bu, bu + w - uw), self.rng.uniform(bv, bv + h - uh)
            self.add("shadow", 6, (cu, cv, cu + uw, cv + uh), extra=1.2 * PX)
            self.add("roof", 7, (cu, cv, cu + uw, cv + uh), self.pick(METAL_COLORS), "metal", 0.0)

    def block_construction(self, u0, v0, u1, v1) -> None:
        """A building site: bare soil, an excavation, heaps, machines, containers, a half-built frame."""
        self.rect((u0, v0, u1, v1), "soil", layer=1)
        w, h = (u1 - u0) * self.rng.uniform(0.3, 0.6), (v1 - v0) * self.rng.uniform(0.3, 0.6)
        pu, pv = self.rng.uniform(u0, u1 - w), self.rng.uniform(v0, v1 - h)
        self.add("shade", 2, (pu, pv, pu + w, pv + h), extra=0.7)
        if self.rng.random() < 0.5:
            self.building((pu + 2 * PX, pv + 2 * PX, pu + w - 2 * PX, pv + h - 2 * PX), 0, None, self.m(3, 8))
        self.clutter(u0, v0, u1, v1, int(self.rng.integers(3, 12)), (2, 7))
        self.loads(u0, v0, u1, v1)

    def block_soil(self, u0, v0, u1, v1) -> None:
        """A bare or fallow plot: soil with tracks, dry grass, a few bushes."""
        self.rect((u0, v0, u1, v1), "soil", layer=1)
        c = self.rng.uniform(u0, u1)
        self.rect((c - 1.5 * PX, v0, c + 1.5 * PX, v1), "yard", layer=2)
        self.grove(u0, v0, u1, v1, int(self.rng.integers(0, 4)), 0.6)

    def block_sports(self, u0, v0, u1, v1) -> None:
        """A pitch of turf with white lines inside a red running track, or tennis courts; a clubhouse."""
        m = 3 * PX
        if u1 - u0 > 70 * PX and v1 - v0 > 45 * PX and self.rng.random() < 0.6:
            self.rect((u0 + m, v0 + m, u1 - m, v1 - m), "track", layer=1)
            pitch = (u0 + m + 7 * PX, v0 + m + 7 * PX, u1 - m - 7 * PX, v1 - m - 7 * PX)
            self.rect(pitch, "turf", layer=2)
            line = 0.12 * PX
            for edge in ((pitch[0], pitch[1], pitch[2], pitch[1] + line), (pitch[0], pitch[3] - line, *pitch[2:]),
                         (pitch[0], pitch[1], pitch[0] + line, pitch[3]), (pitch[2] - line, pitch[1], *pitch[2:]),
                         ((pitch[0] + pitch[2]) / 2 - line / 2, pitch[1], (pitch[0] + pitch[2]) / 2 + line / 2,
                          pitch[3])):
                self.rect(edge, "pitchline", layer=3)
        else:
            u = u0 + m
            while u + 18 * PX < u1 - m and v0 + 38 * PX < v1:
                self.rect((u, v0 + m, u + 18 * PX, v0 + m + 36 * PX), "paving", layer=1)
                self.rect((u + 3 * PX, v0 + m + 6 * PX, u + 15 * PX, v0 + m + 30 * PX),
                          self.pick(["track", "asphalt", "turf"]), layer=2)
                self.rect((u + 3 * PX, v0 + m + 17.9 * PX, u + 15 * PX, v0 + m + 18.1 * PX), "pitchline", layer=3)
                u += 19 * PX
        self.building((u0 + m, v1 - 12 * PX, u0 + m + self.m(10, 20), v1 - 3 * PX), 0, None, self.m(3, 5))

    def block_stand(self, u0, v0, u1, v1) -> None:
        """A closed conifer stand: dark litter in the gaps, dense narrow crowns with long shadows."""
        self.rect((u0, v0, u1, v1), "litter", layer=1)
        self.add("shade", 2, (u0, v0, u1, v1), extra=0.6)
        area = (u1 - u0) * (v1 - v0) / PX ** 2
        for _ in range(int(self.rng.poisson(area / self.rng.uniform(9, 20)))):
            self.tree(self.rng.uniform(u0, u1), self.rng.uniform(v0, v1), self.m(1.0, 2.6), "conifer")
