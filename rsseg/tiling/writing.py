"""Assemble the journal's bands into the final GeoTIFFs, one per output kind, mask last."""

from __future__ import annotations

import os
from pathlib import Path

import rsseg
from rsseg.io.mask_writer import ClassMaskWriter, ScaledOutput, to_cog
from rsseg.io.output_kind import OutputKind
from rsseg.io.qgis_style import write_sidecar
from rsseg.io.raster import georeference
from rsseg.io.remote import RemoteScene
from rsseg.models.checkpoint import ModelCard
from rsseg.tiling.journal import BandJournal
from rsseg.tiling.outputs import MASK


def write_outputs(ds, scene: Path | RemoteScene, journal: BandJournal, card: ModelCard, outputs: dict[OutputKind, Path],
                  cog: bool, disagreement: bool) -> None:
    """Write the journal's bands, in order, into the GeoTIFF of each output (the mask among them).

    Always the same single pass from the stored bands, so the files are byte-identical
    whether the bands came from one run, a resumed one or several ranks. The other outputs
    are renamed before the mask, so a mask under its final name means done.
    """
    folder = journal.folder
    for stale in folder.glob("*.tif"):  # left by a killed assembly
        stale.unlink()
    staged = {kind: folder / f"{kind.name}.tif" for kind in outputs}
    names, colors = list(card.classes.names), list(card.classes.colors)
    scaled = [ScaledOutput(kind, staged[kind], kind.bands(names, disagreement)) for kind in outputs if kind is not MASK]
    writer = ClassMaskWriter(staged[MASK], ds.width, ds.height, ds.crs, ds.transform, names, colors,
                             tags={"RSSEG_SOURCE": scene.name, "RSSEG_VERSION": rsseg.__version__},
                             georef=georeference(ds), scaled=scaled)
    try:
        for band in journal.bands:
            arrays = journal.load(band)
            writer.write(arrays.pop(MASK.name), arrays)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    for kind, final in outputs.items():  # QGIS styles, before the mask
        write_sidecar(final, kind.style(names, colors))
    for kind in sorted(outputs, key=lambda kind: kind is MASK):
        path = staged[kind]
        if cog:
            cog_path = path.with_suffix(".cog.tif")
            to_cog(path, cog_path, kind.resampling)
            path = cog_path
        os.replace(path, outputs[kind])
