"""Many scenes in one call: output names, per-scene runs, the mosaics, ``catalog.json`` and the STAC catalogue."""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from rsseg.distributed import DistEnv, barrier, gather_objects, scene_share
from rsseg.errors import RssegError, captured_warnings, reason
from rsseg.io.atomic import atomic_output
from rsseg.io.outputs import make_output_folder, write_failed
from rsseg.io.remote import Scene, as_scene
from rsseg.io.vrt import write_mosaic_vrt
from rsseg.models.checkpoint import ModelCard
from rsseg.tiling.options import PredictOptions, result_fields
from rsseg.tiling.outputs import MASK, OUTPUT_KINDS, extra_kinds
from rsseg.tiling.report import PredictReport
from rsseg.tiling.run import predict_scene
from rsseg.tiling.stac import write_stac

CATALOG = "catalog.json"
VECTOR_SUFFIX = "_polygons.gpkg"  # <scene stem> + suffix: a scene's polygons
VECTOR_MOSAIC = "mosaic.gpkg"  # one layer over all scenes


@dataclass(frozen=True)
class SceneOutputs:
    """Where one scene's outputs go: the mask, the other rasters by kind name, the polygons."""

    mask: Path
    rasters: dict[str, Path] = field(default_factory=dict)
    vector: Path | str | None = None  # a file, or a PostGIS table URL


def scene_outputs(scene: Scene, folder: Path, kinds: Iterable[str] = (), vector: bool = False) -> SceneOutputs:
    """``FOLDER/<stem><suffix>`` of the mask and of each kind asked for, named by its :class:`OutputKind`."""
    def named(suffix: str) -> Path:
        return folder / f"{scene.stem}{suffix}"
    return SceneOutputs(named(MASK.suffix), {name: named(OUTPUT_KINDS[name].suffix) for name in kinds},
                        named(VECTOR_SUFFIX) if vector else None)


@dataclass
class SceneResult:
    """What happened to one scene: its report (and polygons), or the error that stopped it."""

    scene: Scene
    outputs: SceneOutputs
    report: PredictReport | None = None
    vector: Any = None  # rsseg.vector.VectorizeSummary
    exception: RssegError | None = None
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The lines to show: summary, unfamiliar-scene note, polygons."""
        if self.report is None:
            return []
        lines = [self.report.summary_line(), self.report.unfamiliar_line(),
                 self.vector.summary_line() if self.vector is not None else None]
        return [line for line in lines if line]

    def entry(self) -> dict:
        """Its catalogue entry (JSON-ready)."""
        if self.exception is not None:
            return {"scene": str(self.scene), "status": "failed", "error": str(self.exception)}
        rasters = {kind.name: str(self.outputs.rasters[kind.name]) if kind.name in self.outputs.rasters else None
                   for kind in extra_kinds()}
        return {"scene": str(self.scene), "status": "done", "mask": str(self.outputs.mask), **rasters}


@dataclass
class CatalogueReport:
    """What :func:`predict_scenes` did: every scene's entry, this process's results, the mosaics."""

    entries: list[dict]
    results: list[SceneResult]
    mosaics: dict[str, Path] = field(default_factory=dict)  # kind name (``vector``: the polygons) -> path
    vector: Any = None  # rsseg.vector.VectorizeSummary of the catalogue's polygons
    stac: Path | None = None  # the STAC Collection (``collection.json``)
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict]:
        return [e for e in self.entries if e["status"] == "failed"]

    @property
    def reports(self) -> list[PredictReport]:
        return [r.report for r in self.results if r.report is not None]

    def summary_line(self) -> str:
        done = len(self.entries) - len(self.failed)
        mosaic = f", mosaic -> {self.mosaics[MASK.name]}" if MASK.name in self.mosaics else ""
        return (f"{len(self.entries)} scenes: {done} done, {len(self.failed)} failed in "
                f"{self.seconds:.1f} s{mosaic}")

    def raise_for_failures(self) -> None:
        """Raise :class:`RssegError` naming the failed scenes, if any failed."""
        failed = self.failed
        if failed:
            names = ", ".join(Path(e["scene"]).name for e in failed[:5]) + (" ..." if len(failed) > 5 else "")
            raise RssegError(f"{len(failed)} of {len(self.entries)} scenes failed: {names}")


def predict_scenes(scenes: Sequence[str | os.PathLike], out_dir: str | os.PathLike, model: torch.nn.Module,
                   card: ModelCard, options: PredictOptions | None = None, *, outputs: Iterable[str] = (),
                   vector: bool = False, on_scene: Callable[[SceneResult], None] | None = None,
                   **changes: Any) -> CatalogueReport:
    """Segment ``scenes`` into ``out_dir``: ``<stem>_mask.tif`` (and each of ``outputs``, e.g.
    ``("probs", "confidence")``, and with ``vector`` polygons) per scene, a mosaic VRT per output
    kind over all scenes, ``catalog.json`` and a STAC catalogue (:mod:`rsseg.tiling.stac`).

    ``options`` with ``changes`` as in :func:`rsseg.tiling.predict_scene`. A scene that fails is
    recorded and the others go on (:meth:`CatalogueReport.raise_for_failures`). ``on_scene`` is
    called with each :class:`SceneResult` as it finishes. Under ``torchrun`` (after
    :func:`rsseg.distributed.init_distributed`), ranks share the scenes, or the rows of fewer
    scenes than ranks; rank 0 writes the mosaics and the catalogue.
    """
    folder = Path(out_dir)
    kinds = list(outputs)
    jobs = [(scene, scene_outputs(scene, folder, kinds, vector)) for scene in map(as_scene, scenes)]
    return run_catalogue(jobs, model, card, options or PredictOptions(), DistEnv.from_environ(), folder,
                         on_scene=on_scene, vector_mosaic=vector and len(jobs) > 1, **changes)


def run_catalogue(jobs: list[tuple[Scene, SceneOutputs]], model: torch.nn.Module, card: ModelCard,
                  options: PredictOptions, env: DistEnv, out_dir: Path | None, *,
                  on_scene: Callable[[SceneResult], None] | None = None, vector_mosaic: bool = False,
                  **changes: Any) -> CatalogueReport:
    """Run this rank's share of ``jobs`` (scene, outputs), then (rank 0, with ``out_dir``) the mosaics.

    Without ``out_dir`` (a single scene) or when ranks share a scene, an error propagates at once.
    ``out_dir`` is created for the scenes and removed again if it is still empty at the end.
    """
    started = time.perf_counter()
    created = False
    if out_dir is not None:
        _refuse_collisions([scene for scene, _ in jobs], out_dir)
        if not options.overwrite and not changes.get("overwrite"):
            _refuse_foreign_files(out_dir, vector_mosaic)
        created = make_output_folder(out_dir)
    mine, split = scene_share(len(jobs), env)
    results = []
    for i in mine:
        result = _run_scene(*jobs[i], model, card, options, env if split else None,
                            **{"progress": options.progress and env.is_main, **changes})
        if result.exception is not None and (split or out_dir is None):
            raise result.exception
        results.append(result)
        if on_scene is not None and (not split or env.is_main):
            on_scene(result)
    if env.enabled:
        barrier()
    entries = [entry for part in gather_objects([r.entry() for r in results]) for entry in part]
    if split:
        entries = entries[:len(jobs)]  # every rank recorded every split scene
    report = CatalogueReport(entries, results)
    done = [e for e in entries if e["status"] == "done"]
    if env.is_main and out_dir is not None and done:
        try:
            _write_catalogue(report, out_dir, done, vector_mosaic, options.progress)
            opts = replace(options, **changes)
            report.stac = write_stac(out_dir, done, report.mosaics, card, opts.model_source,
                                     json.loads(json.dumps(result_fields(opts), default=str)))
        except OSError as err:
            raise RssegError(f"{out_dir / CATALOG}: cannot write the catalogue ({err.strerror})") from None
    if env.is_main and created and out_dir is not None and not any(out_dir.iterdir()):
        out_dir.rmdir()
    report.seconds = time.perf_counter() - started
    return report


def _write_catalogue(report: CatalogueReport, out_dir: Path, done: list[dict], vector_mosaic: bool,
                     progress: bool) -> None:
    """The mosaics over the finished scenes (and their polygons), then ``catalog.json``."""
    report.mosaics = _write_mosaics(out_dir, done)
    if vector_mosaic and MASK.name in report.mosaics:
        from rsseg.vector import vectorize_mask

        report.mosaics["vector"] = out_dir / VECTOR_MOSAIC
        report.vector = vectorize_mask(report.mosaics[MASK.name], report.mosaics["vector"], overwrite=True,
                                       progress=progress, probs_path=report.mosaics.get("probs"))
    with atomic_output(out_dir / CATALOG, overwrite=True) as tmp:
        mosaic = report.mosaics.get(MASK.name)
        tmp.write_text(json.dumps({"scenes": report.entries, "mosaic": str(mosaic) if mosaic else None,
                                   "mosaics": {k: str(p) for k, p in report.mosaics.items()}}, indent=2))


def _refuse_foreign_files(out_dir: Path, vector_mosaic: bool) -> None:
    """Refuse files where the catalogue and its mosaics go that an earlier catalogue here did not write."""
    catalogue = out_dir / CATALOG
    try:
        earlier = json.loads(catalogue.read_text()) if catalogue.is_file() else {}
        ours = {CATALOG, *(Path(p).name for p in earlier.get("mosaics", {}).values())} \
            if isinstance(earlier.get("scenes"), list) else set()
    except (OSError, ValueError, AttributeError, TypeError):
        ours = set()
    names = [kind.mosaic_name() for kind in OUTPUT_KINDS.values() if kind.mosaic] + [VECTOR_MOSAIC] * vector_mosaic
    for path in [catalogue, *(out_dir / name for name in names)]:
        if os.path.lexists(path) and path.name not in ours:
            raise RssegError(f"{path}: exists and is not from an earlier catalogue here "
                             f"(use `overwrite` to replace it)")


def _refuse_collisions(scenes: list[Scene], out_dir: Path) -> None:
    stems: dict[str, Scene] = {}
    for scene in scenes:
        if scene.stem in stems:
            raise RssegError(f"{scene}: same name as {stems[scene.stem]}; outputs in {out_dir} would collide")
        stems[scene.stem] = scene


def _run_scene(scene: Scene, outputs: SceneOutputs, model: torch.nn.Module, card: ModelCard,
               options: PredictOptions, split: DistEnv | None, **changes: Any) -> SceneResult:
    """Predict one scene (and vectorise its mask), its warnings kept; a user error is recorded, not raised."""
    result = SceneResult(scene, outputs)
    writing = scene  # what the error names: the scene, then the polygons being written
    with captured_warnings() as caught:
        try:
            result.report = predict_scene(scene, outputs.mask, model, card, options, split=split,
                                          outputs={**options.outputs, **outputs.rasters}, **changes)
            if outputs.vector is not None and (split is None or split.is_main) \
                    and not (result.report.skipped and _vector_exists(outputs.vector)):
                from rsseg.vector import vectorize_mask

                writing = outputs.vector
                result.vector = vectorize_mask(outputs.mask, outputs.vector, probs_path=outputs.rasters.get("probs"),
                                               overwrite=options.overwrite, progress=options.progress)
        except RssegError as err:
            result.exception = err
        except Exception as err:  # noqa: BLE001 (one scene's failure never stops the others)
            result.exception = write_failed(writing, err) if writing != scene else RssegError(f"{scene}: {reason(err)}")
    result.warnings = caught
    return result


def _vector_exists(target: Path | str) -> bool:
    if isinstance(target, Path):
        return target.exists()
    from rsseg.vector.postgis import parse_target, table_exists

    return table_exists(parse_target(target))


def _write_mosaics(out_dir: Path, done: list[dict]) -> dict[str, Path]:
    """A VRT over every scene's file of each kind that mosaics (kind name -> path).

    They describe the whole catalogue, so each run replaces them. When no exact mosaic exists
    (scenes in different CRSs or grids, without CRS...) a warning says why and none is left.
    """
    mosaics: dict[str, Path] = {}
    try:
        for kind in (MASK, *extra_kinds()):
            if kind.mosaic and all(e.get(kind.name) for e in done):
                with atomic_output(out_dir / kind.mosaic_name(), overwrite=True) as tmp:
                    write_mosaic_vrt([Path(e[kind.name]) for e in done], tmp)
                mosaics[kind.name] = out_dir / kind.mosaic_name()
    except RssegError as err:
        warnings.warn(str(err), stacklevel=2)
        for kind in (MASK, *extra_kinds()):  # an earlier run's mosaics would describe other scenes
            if kind.mosaic:
                (out_dir / kind.mosaic_name()).unlink(missing_ok=True)
        return {}
    return mosaics
