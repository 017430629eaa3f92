"""Assemble the journal's bands into the final GeoTIFFs, one per output kind, mask last."""

from __future__ import annotations

import os
from pathlib import Path

import rsseg
from rsseg.io.atomic import OutputClaim
from rsseg.io.mask_writer import ClassMaskWriter, ScaledOutput, to_cog
from rsseg.io.output_kind import OutputKind
from rsseg.io.raster import georeference
from rsseg.io.remote import RemoteScene
from rsseg.models.checkpoint import ModelCard
from rsseg.tiling.journal import BandJournal
from rsseg.tiling.outputs import MASK


def write_outputs(ds, scene: Path | RemoteScene, journal: BandJournal, card: ModelCard,
                  claims: dict[OutputKind, OutputClaim], cog: bool, disagreement: bool, replace: set[str]) -> None:
    """Write the journal's bands, in order, into each output's temporary GeoTIFF, then rename them.

    Always the same single pass from the stored bands, so the files are byte-identical
    whether the bands came from one run, a resumed one or several ranks. Each output (and its
    ``.qml`` style) is written beside its final name, so the renames never cross file systems
    and come only after everything is written; the mask is renamed last, so a mask under its
    final name means done. ``replace``: the absolute paths of outputs that may be replaced.
    """
    names, colors = list(card.classes.names), list(card.classes.colors)
    scaled = [ScaledOutput(kind, claim.tmp, kind.bands(names, disagreement)) for kind, claim in claims.items()
              if kind is not MASK]
    writer = ClassMaskWriter(claims[MASK].tmp, ds.width, ds.height, ds.crs, ds.transform, names, colors,
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
    for kind, claim in claims.items():
        claim.tmp.with_name(f"{claim.prefix}.tmp.qml").write_text(kind.style(names, colors), encoding="utf-8")
        if cog:
            cog_path = claim.tmp.with_name(f"{claim.prefix}.cog{claim.suffix}")
            to_cog(claim.tmp, cog_path, kind.resampling)
            os.replace(cog_path, claim.tmp)
    for kind in sorted(claims, key=lambda kind: kind is MASK):
        claim = claims[kind]
        finals = [final for _, final in claim.outputs()]
        claim.commit(os.path.abspath(claim.final) in replace)
        journal.mark_renamed(finals)
