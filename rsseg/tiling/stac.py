"""The STAC catalogue of an ``--out-dir`` run: a Collection, one Item per scene, the model's MLM Item.

Files sit beside the outputs (``collection.json``, ``<stem>_item.json``, ``model.json``) and
every href in them is relative, so a copied or moved folder stays valid. Each run rewrites them
in place (atomically, file by file).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pystac
import rasterio
from rasterio.warp import transform_bounds

import rsseg
from rsseg.io.atomic import atomic_output
from rsseg.io.mask_meta import read_class_table
from rsseg.models.checkpoint import ModelCard
from rsseg.tiling.outputs import MASK

COLLECTION = "collection.json"
MODEL_ITEM = "model.json"
ITEM_SUFFIX = "_item.json"
GEOTIFF = pystac.MediaType.COG  # rsseg writes tiled GeoTIFFs (COGs with --cog)
GPKG = "application/geopackage+sqlite3"
VRT = "application/xml"

EXT = {
    "proj": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.0.0/schema.json",
    "label": "https://stac-extensions.github.io/label/v1.0.1/schema.json",
    "mlm": "https://stac-extensions.github.io/mlm/v1.4.0/schema.json",
}


def class_objects(names: list[str], colors: list[tuple[int, int, int]]) -> list[dict]:
    """``classification:classes``: value, name and colour (hex) of each class."""
    return [{"value": i, "name": name, "color_hint": "{:02X}{:02X}{:02X}".format(*color)}
            for i, (name, color) in enumerate(zip(names, colors))]


def _grid(path: Path) -> tuple[dict, list[float], dict]:
    """Footprint (WGS84 polygon), its bbox and the ``proj:`` fields of a raster."""
    with rasterio.open(path) as ds:
        proj: dict[str, Any] = {"proj:epsg": ds.crs.to_epsg() if ds.crs else None,
                                "proj:shape": [ds.height, ds.width], "proj:transform": list(ds.transform)[:6],
                                "proj:bbox": list(ds.bounds)}
        bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds) if ds.crs else tuple(ds.bounds)
    west, south, east, north = bounds
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}, [west, south, east, north], proj


def scene_item(entry: dict, folder: Path, when: datetime.datetime, parameters: dict, model: bool) -> pystac.Item:
    """The Item of one finished scene (a ``catalog.json`` entry): its outputs as assets, with ``model`` a
    ``derived_from`` link to ``model.json``."""
    mask = Path(entry[MASK.name])
    geometry, bbox, proj = _grid(mask)
    with rasterio.open(mask) as ds:
        names, colors = read_class_table(ds)
        band = {"data_type": ds.dtypes[0], **({"nodata": ds.nodata} if ds.nodata is not None else {})}
    classes = class_objects(names or [], colors or [])
    item = pystac.Item(mask.name.removesuffix(MASK.suffix), geometry, bbox, when, {
        **proj, "processing:software": {"rsseg": rsseg.__version__},
        "processing:lineage": "rsseg predict: sliding-window semantic segmentation",
        "rsseg:parameters": parameters},
        stac_extensions=[EXT["proj"], EXT["raster"], EXT["classification"], EXT["processing"]])
    item.add_asset("mask", pystac.Asset(str(mask), "class mask", media_type=GEOTIFF, roles=["data"],
                                        extra_fields={"classification:classes": classes, "raster:bands": [band]}))
    for kind in ("probs", "confidence"):
        if entry.get(kind):
            item.add_asset(kind, pystac.Asset(str(entry[kind]), kind, media_type=GEOTIFF, roles=["data", kind]))
    polygons = folder / f"{item.id}_polygons.gpkg"
    if polygons.is_file():
        item.add_asset("polygons", pystac.Asset(str(polygons), "class polygons", media_type=GPKG,
                                                roles=["data", "labels"]))
        item.stac_extensions.append(EXT["label"])
        item.properties.update({"label:description": "class regions vectorised from the mask",
                                "label:type": "vector", "label:properties": ["class_name"],
                                "label:tasks": ["segmentation"], "label:methods": ["automated"],
                                "label:classes": [{"name": "class_name", "classes": names or []}]})
    if model:
        item.add_link(pystac.Link("derived_from", f"./{MODEL_ITEM}", pystac.MediaType.GEOJSON, "model"))
    return item


def model_item(card: ModelCard, model_href: str, self_href: Path, when: datetime.datetime) -> pystac.Item:
    """The model as an Item of the Machine Learning Model (MLM) extension; ``model_href`` its weights file."""
    classes = class_objects(list(card.classes.names), [tuple(c) for c in card.classes.colors])  # type: ignore[misc]
    name = str(card.arch["name"])
    onnx = model_href.endswith(".onnx")
    bands = card.input.bands or range(1, card.in_channels + 1)
    item = pystac.Item(f"rsseg-{name}", None, None, when, {
        "mlm:name": f"rsseg-{name}", "mlm:architecture": name, "mlm:tasks": ["semantic-segmentation"],
        "mlm:framework": "ONNX" if onnx else "PyTorch",
        "mlm:input": [{"name": "image", "bands": [f"band {b}" for b in bands],
                       "input": {"shape": [-1, card.in_channels, card.tile_size, card.tile_size],
                                 "dim_order": ["batch", "channel", "height", "width"], "data_type": "float32"},
                       "value_scaling": [{"type": "z-score", "mean": m * card.input.scale,
                                          "stddev": s * card.input.scale}
                                         for m, s in zip(card.input.mean, card.input.std)]}],
        "mlm:output": [{"name": "classes", "tasks": ["semantic-segmentation"],
                        "result": {"shape": [-1, card.num_classes, card.tile_size, card.tile_size],
                                   "dim_order": ["batch", "channel", "height", "width"], "data_type": "float32"},
                        "classification:classes": classes}],
        "processing:software": {"rsseg": card.rsseg_version}},
        stac_extensions=[EXT["mlm"], EXT["raster"], EXT["processing"]])
    item.set_self_href(str(self_href))
    item.add_asset("weights", pystac.Asset(model_href, "model weights", media_type="application/octet-stream",
                                           roles=["mlm:model"],
                                           extra_fields={"mlm:artifact_type": "onnx" if onnx else "torch.save",
                                                         # the bands mlm:input names, as MLM wants them described
                                                         "raster:bands": [{"name": f"band {b}"} for b in bands]}))
    return item


def write_item(item: pystac.STACObject, overwrite: bool = True) -> Path:
    """Write ``item`` to its self href, every href relative to it, atomically."""
    path = Path(item.get_self_href() or "")
    data = item.to_dict(include_self_link=False, transform_hrefs=True)
    for asset in data.get("assets", {}).values():
        asset["href"] = pystac.utils.make_relative_href(asset["href"], str(path))
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=2))
    return path


def write_stac(folder: Path, done: list[dict], mosaics: dict[str, Path], card: ModelCard, model_source: str | None,
               parameters: dict) -> Path:
    """Write the run's Collection, its scenes' Items and (given the model file) the model's Item into
    ``folder``; the Collection's path."""
    when = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    items = [scene_item(entry, folder, when, parameters, bool(model_source)) for entry in done]
    collection = pystac.Collection(
        f"rsseg-{folder.resolve().name}", "Class masks and polygons segmented by rsseg",
        pystac.Extent(pystac.SpatialExtent([_union([i.bbox for i in items if i.bbox])]),
                      pystac.TemporalExtent([[when, when]])),
        license="other", catalog_type=pystac.CatalogType.SELF_CONTAINED)
    collection.set_self_href(str(folder / COLLECTION))
    for kind, path in mosaics.items():
        vector = kind == "vector"
        collection.add_asset(f"mosaic_{kind}" if kind != MASK.name else "mosaic",
                             pystac.Asset(str(path), f"{kind} mosaic", media_type=GPKG if vector else VRT,
                                          roles=["data", "labels"] if vector else ["data", "overview"]))
    for item in items:
        collection.add_item(item)
        item.set_self_href(str(folder / f"{item.id}{ITEM_SUFFIX}"))
        write_item(item)
    if model_source:
        write_item(model_item(card, str(Path(model_source).resolve()), folder / MODEL_ITEM, when))
    return write_item(collection)


def _union(boxes: list[list[float]]) -> list[float]:
    if not boxes:
        return [-180.0, -90.0, 180.0, 90.0]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
