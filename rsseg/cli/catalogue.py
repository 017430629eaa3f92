"""Many scenes in one ``rsseg predict``: output names, per-scene runs, the mosaic and the catalogue."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click

from rsseg.distributed import DistEnv, barrier, gather_objects, scene_share
from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output
from rsseg.io.vrt import write_mosaic_vrt

FLAG = "\0flag"  # the value of --probs/--vector given without a path
MOSAIC = "mosaic.vrt"
CATALOG = "catalog.json"


SUFFIXES = {"mask": "_mask.tif", "probs": "_probs.tif", "confidence": "_confidence.tif",
            "vector": "_polygons.gpkg"}  # <scene stem> + suffix, in --out-dir and for flag outputs


@dataclass(frozen=True)
class SceneOutputs:
    """Where one scene's outputs go (``None``: not asked for)."""

    mask: Path
    probs: Path | None = None
    vector: Path | None = None
    confidence: Path | None = None


def scene_outputs(scene: Path, folder: Path, **asked: bool) -> SceneOutputs:
    """``FOLDER/<stem>_mask.tif`` and the outputs ``asked`` for (``probs=True``...), named by :data:`SUFFIXES`."""
    return SceneOutputs(folder / f"{scene.stem}{SUFFIXES['mask']}",
                        **{kind: folder / f"{scene.stem}{SUFFIXES[kind]}" for kind, wanted in asked.items() if wanted})


@dataclass
class CatalogueRun:
    """What happened to each scene of this rank (JSON-ready for the catalogue)."""

    scenes: list[dict] = field(default_factory=list)

    def add(self, scene: Path, status: str, **info) -> None:
        self.scenes.append({"scene": str(scene), "status": status, **info})


def run_catalogue(scenes: list[Path], names: Callable[[Path], SceneOutputs], predict_one: Callable,
                  env: DistEnv, out_dir: Path | None, vector_catalogue: Path | None, probs: bool,
                  quiet: bool) -> None:
    """Run ``predict_one(scene, outputs, split)`` on this rank's scenes, then (rank 0) the mosaic.

    Without ``out_dir`` (a single scene) an error simply propagates. Otherwise a scene that
    fails is reported in one line and the others go on; the final line sums up and the exit
    status is non-zero when any scene failed.
    """
    started = time.perf_counter()
    stems = {}
    for scene in scenes:
        if scene.stem in stems and out_dir is not None:
            raise RssegError(f"{scene}: same name as {stems[scene.stem]}; outputs in {out_dir} would collide")
        stems[scene.stem] = scene
    mine, split = scene_share(len(scenes), env)
    run = CatalogueRun()
    for i in mine:
        scene, outputs = scenes[i], names(scenes[i])
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                line = predict_one(scene, outputs, env if split else None)
            for w in caught:
                click.echo(f"Warning: {w.message}", err=True)
            if line is not None:
                click.echo(line)
            run.add(scene, "done", mask=str(outputs.mask), probs=str(outputs.probs) if outputs.probs else None)
        except RssegError as err:
            if split or out_dir is None:
                raise  # a single scene, or the other ranks share this scene: stop them all
            click.echo(f"Error: {err}", err=True)
            run.add(scene, "failed", error=str(err))
    if env.enabled:
        barrier()
    everything = [entry for part in gather_objects(run.scenes) for entry in part]
    if split:
        everything = everything[:len(scenes)]  # every rank recorded every split scene
    failed = [e for e in everything if e["status"] == "failed"]
    done = [e for e in everything if e["status"] == "done"]
    mosaic = None
    if env.is_main and out_dir is not None and done:
        mosaic = _write_mosaic(out_dir, done, probs, vector_catalogue, quiet)
        with atomic_output(out_dir / CATALOG, overwrite=True) as tmp:
            tmp.write_text(json.dumps({"scenes": everything, "mosaic": mosaic}, indent=2))
    if env.is_main and out_dir is not None:
        mosaic_note = f", mosaic -> {out_dir / MOSAIC}" if mosaic else ""
        click.echo(f"{len(everything)} scenes: {len(done)} done, {len(failed)} failed in "
                   f"{time.perf_counter() - started:.1f} s{mosaic_note}")
    if failed:
        raise RssegError(f"{len(failed)} of {len(everything)} scenes failed: "
                         + ", ".join(Path(e["scene"]).name for e in failed[:5]) + (" ..." if len(failed) > 5 else ""))


def _write_mosaic(out_dir: Path, done: list[dict], probs: bool, vector: Path | None, quiet: bool) -> str | None:
    """``mosaic.vrt`` over the masks (and ``mosaic_probs.vrt``), then the catalogue's polygons.

    They describe the whole catalogue, so each run replaces them.
    """
    masks = [Path(e["mask"]) for e in done]
    try:
        with atomic_output(out_dir / MOSAIC, overwrite=True) as tmp:
            write_mosaic_vrt(masks, tmp)
        if probs:
            with atomic_output(out_dir / "mosaic_probs.vrt", overwrite=True) as tmp:
                write_mosaic_vrt([Path(e["probs"]) for e in done], tmp)
    except RssegError as err:
        click.echo(f"Warning: {err}", err=True)
        return None
    if vector is not None:
        from rsseg.vector import vectorize_mask

        summary = vectorize_mask(out_dir / MOSAIC, vector, overwrite=True, progress=not quiet,
                                 probs_path=out_dir / "mosaic_probs.vrt" if probs else None)
        click.echo(f"catalogue: {summary.summary_line()}")
    return str(out_dir / MOSAIC)
