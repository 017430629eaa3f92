"""Fault injection: every case runs ``python -m rsseg.cli`` in a subprocess, as an adversarial user would.

Each case checks the exit status, a one-line message without traceback, that no file is left
behind (temporary files and locks included) and that existing outputs are intact. Categories
follow issue 11 (security, lost outputs, signals, float scenes, collisions, late checks, failed
runs, warnings and GDAL reasons, georeference, concurrency) plus what a careful adversary
would try next.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import random_scene, write_scene
from rasterio.control import GroundControlPoint
from rasterio.transform import Affine

from rsseg.data.generic import prepare_generic
from rsseg.io.mask_meta import NODATA, write_class_table
from rsseg.models import create_model, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
CLASSES = "ground,building,tree,road"
TAG = ".rsseg-"
BIG = 768  # side of the scenes that take long enough to be interrupted


def _default_sigint() -> None:
    """CI runs tests with SIGINT ignored; the CLI must get the default handler to show Ctrl-C behaviour."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1"}


@dataclass
class Run:
    code: int
    out: str
    err: str


def start(*args, cwd: Path | None = None) -> subprocess.Popen:
    """``rsseg ARGS`` as a child process (default SIGINT handling, whatever the parent's)."""
    return subprocess.Popen([sys.executable, "-m", "rsseg.cli", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def rsseg(*args, cwd: Path | None = None) -> Run:
    proc = start(*args, cwd=cwd)
    out, err = proc.communicate(timeout=600)
    return Run(proc.returncode, out, err)


def rsseg_all(cases: list[list], width: int = 4) -> list[Run]:
    """Several ``rsseg`` runs, ``width`` at a time (independent refusals need not wait for each other)."""
    runs: list[Run] = []
    for i in range(0, len(cases), width):
        procs = [start(*args) for args in cases[i:i + width]]
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            runs.append(Run(proc.returncode, out, err))
    return runs


def leftovers(*folders: Path, journal: bool = True) -> list[str]:
    """rsseg temporaries (files, folders, locks) anywhere under ``folders``, and predict's resume
    journals (``.NAME.partial``) unless ``journal=False``."""
    found = [p for f in folders if f.exists() for p in f.rglob(f"*{TAG}*")]
    if journal:
        found += [p for f in folders if f.exists() for p in f.rglob(".*.partial")]
    return [str(p) for p in found]


def refused(run: Run, *words: str, code: int = 1) -> None:
    """Exit ``code``, no traceback, exactly one ``Error:`` line that says ``words``."""
    assert run.code == code, (run.code, run.err)
    assert "Traceback" not in run.err, run.err
    errors = [line for line in run.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, run.err
    for word in words:
        assert word.lower() in errors[0].lower(), (word, errors[0])


def ok(run: Run) -> None:
    assert run.code == 0, run.err
    assert "Traceback" not in run.err, run.err


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode() + f.read_bytes())
    return h.hexdigest()


def read_mask(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


UTM = Affine(0.5, 0, 500000, 0, -0.5, 5000000)


def write_class_mask(path: Path, mask: np.ndarray, crs: str | None = "EPSG:32632", transform: Affine = UTM) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1,
                       dtype="uint8", crs=crs, transform=transform, nodata=NODATA, tiled=True) as ds:
        ds.write(mask, 1)
        write_class_table(ds, CLASSES.split(","), [(i * 60, 0, 0) for i in range(4)])
    return path


class Evil:
    """Unpickling runs ``touch MARKER``: what a crafted state or model file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class World:
    root: Path
    model: Path
    scene: Path
    big: Path
    mask: Path
    big_mask: Path
    labels: Path
    patches: Path
    big_patches: Path

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """A tiny real model file, small and big scenes and masks, labels and a patch folder."""
    root = tmp_path_factory.mktemp("faults")
    torch.manual_seed(0)
    model = create_model("abcnet", 4, 3, backbone="mobilenetv3_small_050")
    save_checkpoint(model, root / "model.pt", class_names=CLASSES.split(","), tile_size=64)
    scene = write_scene(root / "scene.tif", random_scene(96, 96))
    big = write_scene(root / "big.tif", random_scene(BIG, BIG), tiled=True)
    rng = np.random.default_rng(0)
    mask = write_class_mask(root / "mask.tif", blocks(rng, 12, 8))
    big_mask = write_class_mask(root / "big_mask.tif", blocks(rng, 256, 4))
    labels = write_scene(root / "labels.tif", blocks(rng, 12, 8)[None])
    prepare_generic([scene], [labels], CLASSES, root / "patches", patch=64, stride=32, val_fraction=0.34)
    write_scene(root / "scene256.tif", random_scene(256, 256))
    write_scene(root / "labels256.tif", blocks(rng, 32, 8)[None])
    prepare_generic([root / "scene256.tif"], [root / "labels256.tif"], CLASSES, root / "big_patches", patch=64,
                    stride=32, val_fraction=0.25)
    return World(root, root / "model.pt", scene, big, mask, big_mask, labels, root / "patches",
                 root / "big_patches")


def blocks(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """n×n random class blocks of size×size pixels."""
    return np.repeat(np.repeat(rng.integers(0, 4, (n, n)), size, 0), size, 1).astype(np.uint8)


@pytest.fixture(scope="module")
def trained(world) -> Path:
    """A finished one-epoch training run (copy it before changing it)."""
    ok(rsseg(*train_args(world.patches, world.root / "trained")))
    return world.root / "trained"


def copy_run(run: Path, here: Path) -> Path:
    shutil.copytree(run, here / "run")
    return here / "run"


def train_args(data: Path, out: Path, epochs: int = 1) -> list:
    return ["train", "--data", data, "--model", "abcnet", "--set", "model.backbone=mobilenetv3_small_050",
            "--epochs", epochs, "--batch-size", 2, "--tile", 64, "--device", "cpu", "--workers", 0,
            "--threads", 1, "-o", out]


# -- 1. security: no code runs from a crafted file ------------------------------------------------------

@pytest.mark.parametrize("kind", ["resume_pickle", "predict_pickle", "evaluate_pickle"])
def test_crafted_pickle_runs_no_code(world, trained, kind):
    here = world.folder(f"evil_{kind}")
    marker = here / "pwned"
    payload = {"model": Evil(marker), "epoch": 0}
    if kind == "resume_pickle":
        copy_run(trained, here)
        torch.save(payload, here / "run" / "state.pt")
        before = digest(here / "run" / "best.pt")
        run = rsseg("train", "--resume", here / "run")
        refused(run, "state.pt", "safely")
        assert digest(here / "run" / "best.pt") == before
    else:
        with open(here / "evil.pt", "wb") as fh:
            pickle.dump(payload, fh)
        if kind == "predict_pickle":
            run = rsseg("predict", world.scene, "--checkpoint", here / "evil.pt", "-o", here / "m.tif")
        else:
            run = rsseg("evaluate", "--checkpoint", here / "evil.pt", "--scene", world.scene, "--labels",
                        world.labels, "-o", here / "e.json")
        refused(run, "evil.pt")
        assert not (here / "m.tif").exists() and not (here / "e.json").exists()
    assert not marker.exists()
    assert not leftovers(here)


@pytest.mark.parametrize("content", ["garbage", "wrong_structure"])
def test_broken_training_state_is_one_line(world, trained, content):
    here = world.folder(f"state_{content}")
    state = copy_run(trained, here) / "state.pt"
    if content == "garbage":
        state.write_bytes(b"\x80\x02not a torch file")
    else:
        torch.save({"model": {"w": torch.zeros(2)}, "epoch": "x"}, state)
    refused(rsseg("train", "--resume", here / "run"), "state.pt")
    assert not leftovers(here)


# -- 2. outputs never lost: names without extension or with glob characters ------------------------------

@pytest.mark.parametrize("name,probs,vector", [("mask", "p[1]", None), ("m*?[a].tif", "p", "v[1]*.gpkg")])
def test_predict_odd_output_names(world, name, probs, vector):
    here = world.folder(f"odd_{name[:2]}")
    run = rsseg("predict", world.scene, "--checkpoint", world.model, "-o", here / name, "--probs", here / probs,
                *(["--vector", here / vector] if vector else []), "--quiet")
    ok(run)
    assert read_mask(here / name).shape == (96, 96)
    with rasterio.open(here / probs) as ds:
        assert ds.count == 4
    assert (here / name).with_suffix(".json").is_file()
    if vector:
        import pyogrio

        assert len(pyogrio.read_dataframe(here / vector)) > 0
    assert not leftovers(here)


@pytest.mark.parametrize("name,fmt", [("polys", "gpkg"), ("a[b]*.shp", None), ("c*", "fgb")])
def test_vectorize_odd_output_names(world, name, fmt):
    here = world.folder(f"vodd_{name[:1]}")
    run = rsseg("vectorize", world.mask, "-o", here / name, *(["--format", fmt] if fmt else []))
    ok(run)
    import pyogrio

    assert len(pyogrio.read_dataframe(here / name)) > 0
    if name.endswith(".shp"):
        assert {p.suffix for p in here.iterdir()} >= {".shp", ".shx", ".dbf", ".prj"}
    assert not leftovers(here)


def test_evaluate_and_prepare_odd_names(world):
    here = world.folder("odd_eval")
    ok(rsseg("evaluate", "--checkpoint", world.model, "--scene", world.scene, "--labels", world.labels,
             "-o", here / "e[1]"))
    assert "mIoU" in json.loads((here / "e[1]").read_text())["all"]
    ok(rsseg("prepare", "generic", "--image", world.scene, "--labels", world.labels, "--classes", CLASSES,
             "-o", here / "p[1]*", "--patch", 64, "--stride", 64))
    assert (here / "p[1]*" / "dataset.yaml").is_file()
    assert not leftovers(here)


# -- 3. interruptions: SIGTERM, SIGINT, SIGHUP clean up; after SIGKILL a rerun does ----------------------

EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGHUP: 129, signal.SIGKILL: -9}


def wait_for(proc: subprocess.Popen, ready, timeout: float = 240) -> None:
    """Poll until ``ready()`` holds (the child is at work), or fail if it ended first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"ended before the signal: {proc.returncode} {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("never got to work")
        time.sleep(0.05)


def interrupt(args: list, ready, sig: signal.Signals) -> Run:
    proc = start(*args)
    wait_for(proc, ready)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT[sig], (proc.returncode, err)
    assert "Traceback" not in err, err
    return Run(proc.returncode, out, err)


def claimed(folder: Path):
    """Ready once a run holds an output lock in ``folder``."""
    return lambda: any(p.name.endswith(".lock") and TAG in p.name for p in folder.iterdir())


SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGKILL]


@pytest.mark.parametrize("sig", [*SIGNALS, signal.SIGHUP], ids=lambda s: s.name)
def test_predict_interrupted(world, sig):
    if signal.getsignal(sig) == signal.SIG_IGN:
        pytest.skip(f"{sig.name} is ignored here (under nohup?), and a signal ignored stays ignored")
    here = world.folder(f"sig_predict_{sig.name}")
    out = here / "mask.tif"
    out.write_bytes(b"previous output")
    args = ["predict", world.big, "--checkpoint", world.model, "-o", out, "--probs", here / "probs.tif",
            "--overwrite", "--threads", 1, "--runtime", "torch", "--batch-size", 1, "--quiet"]  # seconds of work
    interrupt(args, claimed(here), sig)
    assert out.read_bytes() == b"previous output"
    assert not (here / "probs.tif").exists()
    if sig != signal.SIGKILL:  # only the resume journal of finished bands is kept, for the rerun
        assert not leftovers(here, journal=False)
        assert [p.name for p in here.iterdir() if p.name.startswith(".")] in ([], [".mask.tif.partial"])
    else:
        assert leftovers(here)
        ok(rsseg(*args))
        assert read_mask(out).shape == (BIG, BIG)
        assert not leftovers(here)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_vectorize_interrupted(world, sig):
    here = world.folder(f"sig_vectorize_{sig.name}")
    out = here / "polys.gpkg"
    args = ["vectorize", world.big_mask, "-o", out, "--window-rows", 16]
    interrupt(args, claimed(here), sig)
    assert not out.exists()
    if sig == signal.SIGKILL:
        ok(rsseg(*args))
        assert out.is_file()
    assert not leftovers(here)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_prepare_interrupted(world, sig):
    here = world.folder(f"sig_prepare_{sig.name}")
    out = here / "patches"
    ok(rsseg("prepare", "generic", "--image", world.scene, "--labels", world.labels, "--classes", CLASSES,
             "-o", out, "--patch", 64, "--stride", 64))
    before = digest(out)
    big_labels = write_scene(here / "big_labels.tif", np.zeros((1, BIG, BIG), np.uint8))
    args = ["prepare", "generic", "--image", world.big, "--labels", big_labels, "--classes", CLASSES,
            "-o", out, "--patch", 32, "--stride", 32, "--overwrite"]
    interrupt(args, lambda: any(p.name.endswith(".tmp") for p in here.iterdir()), sig)
    assert digest(out) == before
    if sig == signal.SIGKILL:
        ok(rsseg(*args))
        assert digest(out) != before
    assert not leftovers(here)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_train_interrupted(world, sig):
    here = world.folder(f"sig_train_{sig.name}")
    run_dir = here / "run"
    if sig == signal.SIGKILL:  # killed after its first epoch: --resume continues it
        interrupt(train_args(world.big_patches, run_dir, epochs=2), lambda: (run_dir / "state.pt").exists(), sig)
        ok(rsseg("train", "--resume", run_dir))
        assert json.loads((run_dir / "log.json").read_text())[-1]["epoch"] == 2
    else:  # stopped before its first epoch ended: nothing is left, a plain rerun works
        interrupt(train_args(world.big_patches, run_dir, epochs=50), lambda: (run_dir / "config.yaml").exists(),
                  sig)
        assert not run_dir.exists()
        ok(rsseg(*train_args(world.patches, run_dir)))
    assert (run_dir / "best.pt").is_file()
    assert not leftovers(here)


def test_stale_temporaries_of_a_dead_run_are_removed(world):
    here = world.folder("stale")
    dead = 2**22 + 12345  # above the default pid_max of small systems; never alive
    stale = [here / f".mask.tif{TAG}{dead}-deadbeef.tmp.tif", here / f".mask.tif{TAG}{dead}-deadbeef.lock"]
    for p in stale:
        p.write_bytes(b"x")
    ok(rsseg("predict", world.scene, "--checkpoint", world.model, "-o", here / "mask.tif", "--quiet"))
    assert not leftovers(here)


# -- 5. float scenes ---------------------------------------------------------------------------------

def float_scene(path: Path, scale: float, holes: bool = False) -> Path:
    data = random_scene(96, 96).astype(np.float32) / 255 * scale
    if holes:
        data[:, 10:20, 10:20] = np.nan
        data[0, 40:45, 40:45] = np.inf
    return write_scene(path, data)


@pytest.mark.parametrize("scale", [1.0, 10000.0])
def test_float_scene_off_the_models_scale_is_refused(world, scale):
    here = world.folder(f"float_{scale:g}")
    scene = float_scene(here / "refl.tif", scale)
    refused(rsseg("predict", scene, "--checkpoint", world.model, "-o", here / "m.tif"), "--input-scale")
    assert not (here / "m.tif").exists() and not leftovers(here)
    ok(rsseg("predict", scene, "--checkpoint", world.model, "-o", here / "m.tif", "--input-scale", scale,
             "--quiet"))


def test_non_finite_pixels_are_nodata(world):
    here = world.folder("nan")
    scene = float_scene(here / "holes.tif", 255.0, holes=True)
    ok(rsseg("predict", scene, "--checkpoint", world.model, "-o", here / "m.tif", "--quiet"))
    mask = read_mask(here / "m.tif")
    assert (mask[10:20, 10:20] == NODATA).all() and (mask[40:45, 40:45] == NODATA).all()
    assert (mask[60:, 60:] != NODATA).all()


# -- 6. outputs that coincide with an input or with each other ---------------------------------------------

def test_outputs_coinciding_with_inputs_or_each_other(world):
    here = world.folder("collide")
    scene = here / "scene.tif"
    scene.write_bytes(world.scene.read_bytes())
    (here / "link.tif").symlink_to(scene)
    base = ["predict", scene, "--checkpoint", world.model, "--overwrite"]
    cases = [
        ([*base, "-o", scene], "input"),
        ([*base, "-o", here / "link.tif"], "input"),
        ([*base, "-o", world.model], "input"),
        ([*base, "-o", here / "m.tif", "--probs", here / "m.tif"], "both"),
        ([*base, "-o", here / "x.json"], "run record"),
        ([*base, "-o", here / "m.tif", "--vector", here / "m.json"], "both"),
        (["vectorize", world.mask, "-o", world.mask, "--format", "gpkg", "--overwrite"], "input"),
        (["evaluate", "--checkpoint", world.model, "--scene", scene, "--labels", world.labels, "-o",
          world.labels, "--overwrite"], "input"),
        (["prepare", "generic", "--image", scene, "--labels", world.labels, "--classes", CLASSES, "-o", here,
          "--overwrite"], "input"),
        ([*train_args(world.patches, world.patches)], "patch folder"),
    ]
    before = digest(world.root / "scene.tif", world.model, world.mask, world.labels, world.patches, scene)
    for run, (_, words) in zip(rsseg_all([args for args, _ in cases]), cases):
        refused(run, words)
    assert digest(world.root / "scene.tif", world.model, world.mask, world.labels, world.patches, scene) == before
    assert sorted(p.name for p in here.iterdir()) == ["link.tif", "scene.tif"]


# -- 7. every output checked before any work -----------------------------------------------------------

def test_outputs_checked_before_any_work(world):
    here = world.folder("early")
    (here / "taken.gpkg").write_bytes(b"keep me")
    (here / "a_folder").mkdir()
    base = ["predict", world.scene, "--checkpoint", world.model, "-o", here / "m.tif"]
    cases = [
        ([*base, "--vector", here / "p.xyz"], "format"),
        ([*base, "--vector", here / "missing" / "p.gpkg"], "does not exist"),
        ([*base, "--vector", here / "taken.gpkg"], "exists"),
        ([*base, "--probs", here / "missing" / "p.tif"], "does not exist"),
        (["predict", world.scene, "--checkpoint", world.model, "-o", here / ("n" * 300 + ".tif")], "long"),
        (["predict", world.scene, "--checkpoint", world.model, "-o", here / "a_folder"], "director"),
        (["vectorize", world.mask, "-o", here / ("v" * 300 + ".gpkg")], "long"),
        (["evaluate", "--checkpoint", world.model, "--scene", world.scene, "--labels", world.labels, "-o",
          here / "missing" / "e.json"], "does not exist"),
    ]
    for run, (_, words) in zip(rsseg_all([args for args, _ in cases]), cases):
        refused(run, words, code=2 if "is a directory" in run.err else 1)  # click's own check for -o FILE
    assert (here / "taken.gpkg").read_bytes() == b"keep me"
    assert sorted(p.name for p in here.iterdir()) == ["a_folder", "taken.gpkg"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(world):
    here = world.folder("readonly")
    here.chmod(0o555)
    try:
        refused(rsseg("predict", world.scene, "--checkpoint", world.model, "-o", here / "m.tif"), "not writable")
        refused(rsseg(*train_args(world.patches, here / "run")), "cannot write")
    finally:
        here.chmod(0o755)
    assert not list(here.iterdir())


# -- 8. a failed run does not block the rerun ----------------------------------------------------------

def test_failed_train_leaves_nothing(world):
    here = world.folder("failed_train")
    bad = here / "bad_patches"
    bad.mkdir()
    for p in world.patches.rglob("*"):
        target = bad / p.relative_to(world.patches)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_bytes(p.read_bytes())
    first = sorted((bad / "train" / "masks").iterdir())[0]
    with rasterio.open(first, "r+") as ds:
        ds.write(np.full((1, ds.height, ds.width), 9, np.uint8))
    refused(rsseg(*train_args(bad, here / "run")), "value 9")
    assert not (here / "run").exists()
    refused(rsseg(*train_args(here / "no_such_patches", here / "run")))
    assert not (here / "run").exists()
    ok(rsseg(*train_args(world.patches, here / "run")))
    assert not leftovers(here)


def test_failed_prepare_leaves_nothing_and_keeps_the_old_folder(world):
    here = world.folder("failed_prepare")
    broken = here / "broken.tif"
    broken.write_bytes(world.scene.read_bytes()[:2000])
    args = ["prepare", "generic", "--image", world.scene, "--labels", world.labels, "--classes", CLASSES,
            "--patch", 64, "--stride", 64]
    refused(rsseg(*args[:-4], "--image", broken, "--labels", world.labels, *args[-4:], "-o", here / "p"),
            "broken.tif")
    assert not (here / "p").exists()
    ok(rsseg(*args, "-o", here / "p"))
    before = digest(here / "p")
    refused(rsseg(*args[:-4], "--image", broken, "--labels", world.labels, *args[-4:], "-o", here / "p",
                  "--overwrite"), "broken.tif")
    assert digest(here / "p") == before
    assert not leftovers(here)


# -- 10. labels off the image, GDAL's own reasons, warnings as one line ---------------------------------------

def test_labels_not_overlapping_the_image_are_refused(world):
    here = world.folder("overlap")
    far = write_scene(here / "far_labels.tif", np.ones((1, 96, 96), np.uint8),
                      transform=Affine(0.09, 0, 900000.0, 0, -0.09, 5400000.0))
    refused(rsseg("prepare", "generic", "--image", world.scene, "--labels", far, "--classes", CLASSES, "-o",
                  here / "p"), "no pixel")
    assert not (here / "p").exists() and not leftovers(here)


def test_gdal_reason_is_kept(world):
    here = world.folder("truncated")
    data = world.big.read_bytes()
    (here / "cut.tif").write_bytes(data[: len(data) // 2])
    run = rsseg("predict", here / "cut.tif", "--checkpoint", world.model, "-o", here / "m.tif")
    refused(run, "cut.tif")
    assert "previous exception" not in run.err.lower() and "TIFF" in run.err
    assert not (here / "m.tif").exists() and not leftovers(here)


def test_warnings_are_one_line(world):
    here = world.folder("warnings")
    mask = write_class_mask(here / "nocrs.tif", read_mask(world.mask), crs=None, transform=Affine.identity())
    run = rsseg("vectorize", mask, "-o", here / "v.gpkg")
    ok(run)
    lines = run.err.strip().splitlines()
    assert any(line.startswith("Warning:") and "no CRS" in line for line in lines), run.err
    assert not any("UserWarning" in line or "warnings.warn" in line or "pyogrio" in line for line in lines)


# -- beyond: every kind of georeference carried or refused clearly ----------------------------------------------

def test_gcp_and_rpc_georeference_carried_or_refused(world):
    here = world.folder("georef")
    data = random_scene(96, 96)
    gcps = [GroundControlPoint(row, col, 500000 + col * 0.5, 5400000 - row * 0.5)
            for row, col in [(0, 0), (0, 95), (95, 0), (95, 95)]]
    with rasterio.open(here / "gcp.tif", "w", driver="GTiff", width=96, height=96, count=3, dtype="uint8",
                       gcps=gcps, crs="EPSG:32632") as ds:
        ds.write(data)
    ok(rsseg("predict", here / "gcp.tif", "--checkpoint", world.model, "-o", here / "gcp_mask.tif", "--quiet"))
    with rasterio.open(here / "gcp_mask.tif") as ds:
        points, crs = ds.gcps
        assert len(points) == 4 and crs == "EPSG:32632" and points[3].x == gcps[3].x
    refused(rsseg("vectorize", here / "gcp_mask.tif", "-o", here / "v.gpkg"), "GCP")
    refused(rsseg("predict", here / "gcp.tif", "--checkpoint", world.model, "-o", here / "m2.tif", "--vector",
                  here / "v.gpkg"), "GCP")
    assert not (here / "m2.tif").exists() and not (here / "v.gpkg").exists()
    rotated = Affine(0.3, 0.2, 500000, 0.2, -0.3, 5400000)
    write_scene(here / "rotated.tif", data, transform=rotated)
    ok(rsseg("predict", here / "rotated.tif", "--checkpoint", world.model, "-o", here / "rot_mask.tif", "--quiet"))
    with rasterio.open(here / "rot_mask.tif") as ds:
        assert ds.transform.almost_equals(rotated)
    assert not leftovers(here)


def test_rpc_georeference_carried(world):
    from rasterio.rpc import RPC

    here = world.folder("rpc")
    rpcs = RPC(height_off=100, height_scale=50, lat_off=45, lat_scale=0.01, line_den_coeff=[1] + [0] * 19,
               line_num_coeff=[0, 0, -1] + [0] * 17, line_off=48, line_scale=48, long_off=7, long_scale=0.01,
               samp_den_coeff=[1] + [0] * 19, samp_num_coeff=[0, 1] + [0] * 18, samp_off=48, samp_scale=48)
    with rasterio.open(here / "rpc.tif", "w", driver="GTiff", width=96, height=96, count=3, dtype="uint8",
                       rpcs=rpcs) as ds:
        ds.write(random_scene(96, 96))
    ok(rsseg("predict", here / "rpc.tif", "--checkpoint", world.model, "-o", here / "m.tif", "--quiet"))
    with rasterio.open(here / "m.tif") as ds:
        assert ds.rpcs is not None and ds.rpcs.lat_off == 45
    assert not leftovers(here)


# -- beyond: two runs on one output at the same time ----------------------------------------------------------

@pytest.mark.parametrize("overwrite", [False, True])
def test_concurrent_runs_never_both_succeed(world, overwrite):
    here = world.folder(f"concurrent_{overwrite}")
    args = ["predict", world.big, "--checkpoint", world.model, "-o", here / "m.tif", "--threads", 1, "--quiet",
            *(["--overwrite"] if overwrite else [])]
    first = start(*args)
    wait_for(first, claimed(here))
    first.send_signal(signal.SIGSTOP)  # holds its lock while the second run starts, however slow the machine
    try:
        second = rsseg(*args)
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    refused(second, "another rsseg run")
    assert read_mask(here / "m.tif").shape == (BIG, BIG)
    assert not leftovers(here)


# -- 4. model cards checked on load -------------------------------------------------------------------

def tampered_model(world: World, name: str, **changes) -> Path:
    """The test model file with its stored card changed (``section__field`` or a top-level field)."""
    payload = torch.load(world.model, weights_only=True)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        target = payload["card"][section] if field else payload["card"]
        target[field or section] = value
    path = world.root / f"{name}.pt"
    torch.save(payload, path)
    return path


CARDS = {
    "five_names_six_classes": ({"classes__names": list("abc"), "classes__colors": [[0, 0, 0]] * 3}, "4 classes"),
    "input_scale_zero": ({"input__scale": 0}, "input scale"),
    "classes_not_a_record": ({"classes": "six"}, "invalid model card"),
    "mean_std_lengths": ({"input__mean": [0.5]}, "band means"),
}


@pytest.mark.parametrize("case", sorted(CARDS))
def test_broken_model_card_refused(world, case):
    changes, words = CARDS[case]
    here = world.folder(f"card_{case}")
    model = tampered_model(world, case, **changes)
    refused(rsseg("predict", world.scene, "--checkpoint", model, "-o", here / "m.tif"), "invalid model card", words)
    refused(rsseg("evaluate", "--checkpoint", model, "--scene", world.scene, "--labels", world.labels, "-o",
                  here / "e.json"), words)
    assert not list(here.iterdir())


def test_unknown_card_field_is_a_one_line_warning(world):
    here = world.folder("card_unknown")
    model = tampered_model(world, "future", future_field=1)
    run = rsseg("predict", world.scene, "--checkpoint", model, "-o", here / "m.tif", "--quiet")
    ok(run)
    assert [line for line in run.err.splitlines() if "future_field" in line][0].startswith("Warning:")
    assert "UserWarning" not in run.err


# -- 9. ranges checked at the command-line edge -----------------------------------------------------------

def range_cases(world: World, here: Path) -> dict[str, tuple[list, str]]:
    uint32 = np.zeros((1, 16, 16), dtype=np.uint32)
    uint32[0, 4:8, 4:8] = 2**31 + 5
    big_ids = write_scene(here / "ids.tif", uint32)
    predict = ["predict", world.scene, "--checkpoint", world.model, "-o", here / "m.tif"]
    train = train_args(world.patches, here / "run")
    return {
        "predict --stride -5": ([*predict, "--stride", -5], "--stride"),
        "predict --threads -1": ([*predict, "--threads", -1], "--threads"),
        "predict --device foo": ([*predict, "--device", "foo"], "--device"),
        "predict --input-scale -1": ([*predict, "--input-scale", -1], "--input-scale"),
        "predict --input-scale nan": ([*predict, "--input-scale", "nan"], "--input-scale"),
        "train --batch-size 0": ([*train, "--batch-size", 0], "--batch-size"),
        "train --tile 0": ([*train, "--tile", 0], "--tile"),
        "train --set optim.lr=fast": ([*train, "--set", "optim.lr=fast"], "optim.lr"),
        "prepare --val-fraction -0.5": (["prepare", "generic", "--image", world.scene, "--labels", world.labels,
                                         "--classes", CLASSES, "-o", here / "p", "--val-fraction", -0.5],
                                        "--val-fraction"),
        "vectorize --window-rows -5": (["vectorize", world.mask, "-o", here / "v.gpkg", "--window-rows", -5],
                                       "--window-rows"),
        "vectorize uint32 ids >= 2**31": (["vectorize", big_ids, "-o", here / "v.gpkg"], "class id"),
        "models --size 0": (["models", "--size", 0], "--size"),
    }


def test_ranges_refused_at_the_cli_edge(world):
    here = world.folder("ranges")
    cases = range_cases(world, here)
    for (name, (_, words)), run in zip(cases.items(), rsseg_all([args for args, _ in cases.values()])):
        assert run.code in (1, 2), name
        refused(run, words, code=run.code)
    assert sorted(p.name for p in here.iterdir()) == ["ids.tif"]
