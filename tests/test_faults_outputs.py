"""Fault injection, issue 21 points 1, 2, 3 and 7: what a run may replace, whole-or-absent outputs on
any file system (disk full, another device), resume journals verified before they are trusted,
and catalogues that go on past a failing scene.

Every case runs ``python -m rsseg.cli`` in a subprocess and checks the exit status, exactly one
``Error:`` or ``Warning:`` line without traceback, no leftovers, and every file that was there
before byte-identical. Disk-full and cross-device cases mount a small tmpfs (root only).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import random_scene, write_scene
from test_faults import ENV, Run, leftovers, ok, read_mask, refused, rsseg, rsseg_all

from rsseg.models import create_model, save_checkpoint
from rsseg.tiling.journal import BandJournal, partial_dir

CLASSES = "ground,building,tree,road"
TALL = 1024  # rows of the scene whose journal has two bands of 512 rows
PALETTE_NOISE = "palette index raster bands without a palette"  # GDAL's, removed at its cause by issue 21 point 10


@dataclass
class Scenes:
    root: Path
    model: Path
    small: Path
    tall: Path
    mask: np.ndarray  # the reference result of ``tall`` (with --probs)
    probs: np.ndarray
    key: str

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path


def predict(scenes: Scenes, scene: Path, out: Path, *extra) -> list:
    return ["predict", scene, "--checkpoint", scenes.model, "-o", out, "--threads", 1, "--quiet", "--gsd", "native",
            *extra]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Scenes:
    """A tiny model, a small scene and a two-band tall scene with its reference mask and probabilities."""
    root = tmp_path_factory.mktemp("faults_outputs")
    torch.manual_seed(0)
    model = create_model("abcnet", 4, 3, backbone="mobilenetv3_small_050")
    save_checkpoint(model, root / "model.pt", class_names=CLASSES.split(","), tile_size=64)
    small = write_scene(root / "small.tif", random_scene(96, 96))
    tall = write_scene(root / "tall.tif", random_scene(TALL, 64), tiled=True)
    ref = root / "ref"
    ref.mkdir()
    ok(rsseg("predict", tall, "--checkpoint", root / "model.pt", "-o", ref / "m.tif", "--probs", ref / "p.tif",
             "--threads", 1, "--quiet", "--gsd", "native"))
    with rasterio.open(ref / "p.tif") as ds:
        probs = ds.read()
    key = json.loads((ref / "m.json").read_text())["key"]
    return Scenes(root, root / "model.pt", small, tall, read_mask(ref / "m.tif"), probs, key)


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under ``folders`` and its bytes."""
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def one_warning(run: Run, *words: str) -> None:
    """Exit 0, no traceback, exactly one ``Warning:`` line that says ``words``."""
    ok(run)
    lines = [line for line in run.err.splitlines() if line.startswith("Warning:") and PALETTE_NOISE not in line]
    assert len(lines) == 1, run.err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


def journal_of(scenes: Scenes, out: Path) -> BandJournal:
    """The journal a killed run of ``tall`` with ``--probs`` would leave: both bands finished."""
    journal = BandJournal.open(out, scenes.key, TALL)
    for band in journal.bands:
        journal.save(band, {"mask": scenes.mask[band.y0:band.y1], "probs": scenes.probs[:, band.y0:band.y1]})
    return journal


# 1. Nothing that is not a named output is ever replaced

def test_resumed_run_replaces_only_what_it_renamed(scenes):
    """A journal whose key matches may replace the outputs it renamed, never a file that sits there."""
    here = scenes.folder("renamed")
    out, probs = here / "m.tif", here / "p.tif"
    journal = journal_of(scenes, out)
    probs.write_bytes(b"someone else's file")
    before = snapshot(here)
    refused(rsseg(*predict(scenes, scenes.tall, out, "--probs", probs)), "p.tif", "exists")
    assert snapshot(here) == before  # the journal kept for a rerun, the foreign file intact

    shutil.copy(scenes.root / "ref" / "p.tif", probs)  # as if the killed run renamed it, then died
    journal.mark_renamed([probs])
    ok(rsseg(*predict(scenes, scenes.tall, out, "--probs", probs)))
    assert np.array_equal(read_mask(out), scenes.mask) and not leftovers(here)


def test_styles_are_outputs(scenes):
    """``.qml`` sidecars of two outputs on one name, or an existing style, are refused before any work."""
    here = scenes.folder("styles")
    (here / "m.qml").write_text("<qgis>my own style</qgis>")
    before = snapshot(here)
    collide, existing = rsseg_all([predict(scenes, scenes.small, here / "a.tif", "--probs", here / "a.tiff"),
                                   predict(scenes, scenes.small, here / "m.tif")], width=2)
    refused(collide, "a.qml", "style")
    refused(existing, "m.qml", "exists")
    assert snapshot(here) == before and not leftovers(here)


def test_vector_sidecars_are_outputs(scenes):
    """A Shapefile's parts and a vector ``.qml`` are outputs too: one that exists, or collides, is refused."""
    here = scenes.folder("vector_sidecars")
    (here / "polys.dbf").write_bytes(b"someone's table")
    ok(rsseg("predict", scenes.small, "--checkpoint", scenes.model, "-o", here / "m.tif", "--quiet"))
    before = snapshot(here)
    foreign, collide = rsseg_all([["vectorize", here / "m.tif", "-o", here / "polys.shp"],
                                  predict(scenes, scenes.small, here / "n.tif", "--vector", here / "n.geojson")],
                                 width=2)
    refused(foreign, "polys.dbf", "exists")
    refused(collide, "n.qml", "one would be lost")
    assert snapshot(here) == before and not leftovers(here)


def test_export_output_that_is_an_input(scenes):
    here = scenes.folder("export_onto_input")
    model = Path(shutil.copy(scenes.model, here / "model.pt"))
    (here / "model.onnx").symlink_to(model)
    before = snapshot(here)
    onto_model, onto_link = rsseg_all([["export", model, "-o", model, "--overwrite"],
                                       ["export", model, "--overwrite"]], width=2)
    refused(onto_model, "model.pt", "input")
    refused(onto_link, "model.onnx", "input")
    assert snapshot(here) == before and not leftovers(here)


def test_catalogue_files_that_are_not_ours(scenes):
    """A ``catalog.json`` or ``mosaic.vrt`` that no earlier catalogue wrote is replaced only with --overwrite."""
    here = scenes.folder("foreign_catalogue")
    (here / "catalog.json").write_text('{"my": "own notes"}')
    (here / "mosaic.vrt").write_text("<VRTDataset/>")
    before = snapshot(here)
    refused(rsseg("predict", scenes.small, "--checkpoint", scenes.model, "--out-dir", here, "--quiet"),
            "catalog.json", "--overwrite")
    assert snapshot(here) == before and not leftovers(here)


# 3. The journal is verified before it is trusted

def _truncate(journal: BandJournal, band) -> None:
    path = journal._path(band)
    path.write_bytes(path.read_bytes()[:100])


def _empty(journal: BandJournal, band) -> None:
    journal._path(band).write_bytes(b"")


def _swap(journal: BandJournal, band) -> None:
    a, b = (journal._path(x) for x in journal.bands)
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def _shape(journal: BandJournal, band) -> None:
    journal.save(band, {"mask": np.zeros((band.y1 - band.y0, 32), np.uint8),
                        "probs": np.zeros((4, band.y1 - band.y0, 32), np.uint8)})


def _class_ids(journal: BandJournal, band) -> None:
    journal.save(band, {"mask": np.full((band.y1 - band.y0, 64), 9, np.uint8),
                        "probs": np.zeros((4, band.y1 - band.y0, 64), np.uint8)})


DAMAGE = {"truncated": (_truncate, "unreadable"), "empty": (_empty, "unreadable"), "swapped": (_swap, "checksum"),
          "shape": (_shape, "not uint8"), "class_ids": (_class_ids, "class ids")}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_band_is_recomputed(scenes, damage):
    here = scenes.folder(f"damaged_{damage}")
    out = here / "m.tif"
    journal = journal_of(scenes, out)
    spoil, words = DAMAGE[damage]
    spoil(journal, journal.bands[0])
    run = rsseg(*predict(scenes, scenes.tall, out, "--probs", here / "p.tif"))
    one_warning(run, "resume journal", words)
    assert np.array_equal(read_mask(out), scenes.mask)
    assert sorted(p.name for p in here.iterdir()) == ["m.json", "m.qml", "m.tif", "p.qml", "p.tif"]


def test_journal_that_cannot_be_kept(scenes):
    """A journal folder name too long for the file system, or a file in its place: one line, nothing touched."""
    here = scenes.folder("journal_blocked")
    long_name = "m" * (250 - len(".tif")) + ".tif"
    blocked = here / "b.tif"
    partial_dir(blocked).write_text("not a folder")
    before = snapshot(here)
    too_long, file_there = rsseg_all([predict(scenes, scenes.small, here / long_name),
                                      predict(scenes, scenes.small, blocked)], width=2)
    refused(too_long, "resume journal", "too long")
    refused(file_there, "resume journal", "b.tif")
    assert snapshot(here) == before and not leftovers(here, journal=False)


# 7. A catalogue goes on

def test_failing_scene_does_not_stop_the_catalogue(scenes):
    here = scenes.folder("catalogue_goes_on")
    out_dir = here / "out"
    out_dir.mkdir()
    (out_dir / ".tall_mask.tif.partial").write_text("a file where the journal goes")  # an OSError before rsseg 21
    before = snapshot(here)
    run = rsseg("predict", scenes.tall, scenes.small, "--checkpoint", scenes.model, "--out-dir", out_dir,
                "--threads", 1, "--quiet")
    assert run.code == 1 and "Traceback" not in run.err, run.err
    errors = [line for line in run.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2 and "tall" in errors[0] and "1 of 2 scenes failed" in errors[1], run.err
    catalog = json.loads((out_dir / "catalog.json").read_text())
    assert [e["status"] for e in catalog["scenes"]] == ["failed", "done"]
    assert read_mask(out_dir / "small_mask.tif").shape == (96, 96)
    assert all(snapshot(here)[p] == b for p, b in before.items()) and not leftovers(here, journal=False)


def test_rank_failure_is_one_line_on_every_rank(scenes):
    """Under torchrun, a rank that stops (here rank 0: its journal folder is blocked) stops the others in one line."""
    here = scenes.folder("ranks")
    (here / ".tall_mask.tif.partial").write_text("a file where the journal goes")
    before = snapshot(here)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    args = ["predict", scenes.tall, "--checkpoint", scenes.model, "--out-dir", here, "--quiet", "--threads", 1,
            "--device", "cpu"]
    procs = [subprocess.Popen([sys.executable, "-m", "rsseg.cli", *map(str, args)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**ENV, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}) for r in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    runs = [Run(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]
    refused(runs[0], "resume journal")
    refused(runs[1], "another rank stopped")
    assert snapshot(here) == before and not leftovers(here, journal=False)


def test_scene_lists_and_out_dirs_refused_in_one_line(scenes):
    here = scenes.folder("lists")
    (here / "self.txt").write_text(f"{scenes.small}\n@self.txt\n")
    (here / "a.txt").write_text("@b.txt\n")
    (here / "b.txt").write_text("@a.txt\n")
    (here / "empty.txt").write_text("# nothing yet\n\n")
    (here / "file").write_text("a file")
    (here / "bad.pt").write_bytes(b"not a model")
    before = snapshot(here)
    cases = {"self.txt": ["@" + str(here / "self.txt")], "a.txt": ["@" + str(here / "a.txt")],
             "names no scene": ["@" + str(here / "empty.txt")]}
    runs = rsseg_all([["predict", *args, "--checkpoint", scenes.model, "--out-dir", here / "out"]
                      for args in cases.values()]
                     + [["predict", scenes.small, "--checkpoint", scenes.model, "--out-dir", here / "file" / "out"],
                        ["predict", scenes.small, "--checkpoint", here / "bad.pt", "--out-dir", here / "out"]],
                     width=2)
    for words, run in zip(cases, runs):
        refused(run, words)
    refused(runs[3], "is a file")
    assert runs[4].code != 0 and "Traceback" not in runs[4].err  # a late failure...
    assert not (here / "out").exists()  # ...leaves no empty out-dir
    assert snapshot(here) == before


# 2. Whole or absent, on any file system

@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (``size`` in kB) at a fresh folder; unmounted after the test."""
    mounted = []

    def mount(name: str, size: int, *options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        opts = ",".join([f"size={size}k", *options])
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def test_outputs_on_another_file_system(scenes, tmpfs):
    here = scenes.folder("cross_device")
    other = tmpfs("other", 4096)
    assert os.stat(other).st_dev != os.stat(here).st_dev
    ok(rsseg(*predict(scenes, scenes.tall, here / "m.tif", "--probs", other / "p.tif", "--confidence",
                      other / "c.tif")))
    assert np.array_equal(read_mask(here / "m.tif"), scenes.mask)
    assert sorted(p.name for p in other.iterdir()) == ["c.qml", "c.tif", "p.qml", "p.tif"]
    assert not leftovers(here) and not leftovers(other)


def test_disk_full(scenes, tmpfs):
    """On a full disk: one line, exit 1, nothing half-written, what was there intact."""
    full = tmpfs("full", 64)
    (full / "keep.txt").write_text("was here before")
    before = snapshot(full)
    single, catalogue = rsseg_all([predict(scenes, scenes.tall, full / "m.tif", "--probs", full / "p.tif"),
                                   ["predict", scenes.tall, scenes.small, "--checkpoint", scenes.model, "--out-dir",
                                    full / "out", "--vector", "--threads", 1, "--quiet"]], width=1)
    refused(single, "m.tif", "no space left")  # the journal's bands fit, the GeoTIFFs do not
    # each scene's failure (its polygons do not fit) is one line, the others go on, exit 1 at the end
    assert catalogue.code == 1 and "Traceback" not in catalogue.err, catalogue.err
    errors = [line for line in catalogue.err.splitlines() if line.startswith("Error:")]
    assert [Path(e.split(":")[1].strip()).name for e in errors[:-1]] == ["tall_polygons.gpkg", "small_polygons.gpkg"]
    assert all("no space left" in e for e in errors[:-1]), catalogue.err
    assert not (full / "out" / "catalog.json").exists() and not leftovers(full)
    assert all(snapshot(full)[p] == b for p, b in before.items())
    for mask in (full / "out").glob("*_mask.tif"):  # what was renamed is whole
        assert read_mask(mask).size


def test_disk_full_for_the_journal(scenes, tmpfs):
    tiny = tmpfs("tiny", 12)
    refused(rsseg(*predict(scenes, scenes.tall, tiny / "m.tif", "--probs", tiny / "p.tif")), "resume journal",
            "no space left")
    assert not any(tiny.iterdir())


def test_read_only_out_dir(scenes, tmpfs):
    read_only = tmpfs("ro", 64, "ro")
    refused(rsseg("predict", scenes.small, "--checkpoint", scenes.model, "--out-dir", read_only / "out"),
            "not writable")
    assert not any(read_only.iterdir())
