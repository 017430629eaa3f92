"""Class schemas (names and RGB palettes) of the public benchmarks."""

from __future__ import annotations

from rsseg.schema import ClassSchema

ISPRS = ClassSchema(
    names=("ImSurf", "Building", "LowVeg", "Tree", "Car", "Clutter"),
    colors=((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)),
    excluded_from_mean=(5,),
)

UAVID = ClassSchema(
    names=("Building", "Road", "Tree", "LowVeg", "Moving_Car", "Static_Car", "Human", "Clutter"),
    colors=((128, 0, 0), (128, 64, 128), (0, 128, 0), (128, 128, 0), (64, 0, 128), (192, 0, 192),
            (64, 64, 0), (0, 0, 0)),
)

CLASS_TABLES = {"vaihingen": ISPRS, "potsdam": ISPRS, "isprs": ISPRS, "uavid": UAVID}
