"""Ground materials, their classes and colours, and the scene's fixed geometry (GSD, CRS, origin)."""

from __future__ import annotations

import numpy as np

GSD = 0.09  # metres per pixel, as Vaihingen
CRS = "EPSG:32632"  # UTM 32N
ORIGIN = (497000.0, 5420000.0)  # west, north (near Vaihingen an der Enz)
BLOCK = 512
PX = 1.0 / GSD  # pixels per metre

IMSURF, BUILDING, LOWVEG, TREE, CAR, CLUTTER = range(6)

# materials: class label, two colours (R, G, B, NIR) mixed by large-scale noise, texture amplitude
# at three scales (~4 m, ~0.7 m, ~0.2 m) applied multiplicatively
MATERIALS = {
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
    # suburban and industrial districts (see :mod:`~rsseg.synthetic.districts`): roof materials (coloured
    # per roof), bare ground, sports surfaces, pools (Clutter, as water in ISPRS), garden walls
    "tiles": (BUILDING, None, None, (0.04, 0.06, 0.12)),
    "metal": (BUILDING, None, None, (0.02, 0.02, 0.04)),
    "gravel": (BUILDING, None, None, (0.05, 0.10, 0.26)),
    "concrete": (BUILDING, None, None, (0.07, 0.05, 0.08)),
    "solar": (BUILDING, (34, 42, 66, 50), (44, 52, 78, 60), (0.01, 0.01, 0.03)),
    "soil": (LOWVEG, (152, 122, 92, 150), (118, 94, 70, 128), (0.10, 0.14, 0.18)),
    "yard": (IMSURF, (142, 138, 130, 140), (118, 114, 108, 118), (0.06, 0.08, 0.18)),
    "track": (IMSURF, (164, 74, 58, 150), (150, 68, 54, 140), (0.02, 0.02, 0.05)),
    "turf": (LOWVEG, (62, 128, 58, 190), (70, 136, 64, 198), (0.02, 0.02, 0.04)),
    "pitchline": (LOWVEG, (226, 228, 222, 214), (232, 232, 226, 220), (0.01, 0.01, 0.02)),
    "pool": (CLUTTER, (74, 172, 204, 40), (62, 156, 196, 34), (0.02, 0.02, 0.03)),
    "wall": (IMSURF, (184, 178, 166, 176), (160, 152, 140, 150), (0.03, 0.04, 0.06)),
}
MATERIAL_IDS = {name: i for i, name in enumerate(MATERIALS)}
LABEL_OF = np.array([m[0] for m in MATERIALS.values()], dtype=np.uint8)
TEXTURE = np.array([m[3] for m in MATERIALS.values()], dtype=np.float32)
# field colours: painted as the first colour, shifted towards the second by large-scale noise
FIELD_BASE = {name: m[1] for name, m in MATERIALS.items() if m[1] is not None}
FIELD_SHIFT = np.array([np.subtract(m[2], m[1]) if m[1] else (0,) * 4 for m in MATERIALS.values()], np.float32).T

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

# suburban and industrial districts: clay tiles (red, orange, brown), concrete tiles (dark, light),
# corrugated metal sheds, flat roofs (gravel, concrete); cars in the colours real cars have
TILE_COLORS = [(168, 74, 50, 160), (186, 96, 58, 176), (150, 64, 46, 146), (198, 112, 70, 186),
               (124, 70, 52, 126), (110, 58, 44, 112), (176, 84, 62, 168)]
CONCRETE_COLORS = [(72, 72, 76, 78), (96, 94, 94, 98), (58, 60, 66, 64), (150, 146, 140, 150),
                   (176, 172, 164, 176)]
METAL_COLORS = [(176, 180, 182, 178), (150, 156, 160, 152), (204, 206, 204, 200), (96, 112, 128, 100),
                (120, 60, 50, 120), (92, 110, 96, 100)]
GRAVEL_COLORS = [(150, 146, 138, 150), (126, 122, 116, 126), (172, 166, 156, 170), (104, 100, 96, 104)]
REAL_CAR_COLORS = [(226, 226, 226, 216)] * 4 + [(150, 152, 156, 150)] * 3 + [(28, 28, 32, 36)] * 3 + \
    [(188, 190, 192, 186)] * 3 + [(96, 98, 102, 96)] * 2 + [(40, 56, 110, 60), (150, 30, 32, 140), (70, 40, 30, 70)]
