"""Fault injection, issue 21 points 4-6 and 8-10: the ONNX cache, model files, bounded work, mosaics,
names and formats. Every case runs the CLI in a subprocess and checks the exit status, exactly one
``Error:``/``Warning:`` line without traceback, no leftovers and every pre-existing file unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import TinyFCN, card_for, random_scene, write_scene
from test_faults import Run, digest, leftovers, read_mask

from rsseg.models import save_checkpoint
from rsseg.models.checkpoint import load_checkpoint
from rsseg.models.onnx_export import CARD_KEY, export_onnx

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1"}


def start(*args, cache: Path | None = None) -> subprocess.Popen:
    """``rsseg ARGS`` with the test models registered, as a child process (``cache``: its XDG_CACHE_HOME)."""
    env = {**ENV, **({"XDG_CACHE_HOME": str(cache)} if cache else {})}
    return subprocess.Popen([sys.executable, str(TESTS / "rsseg_with_test_models.py"), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tools(*procs: subprocess.Popen) -> list[Run]:
    """The runs of child processes started together."""
    outputs = [p.communicate(timeout=600) for p in procs]
    return [Run(p.returncode, *out) for p, out in zip(procs, outputs)]


def tool(*args, cache: Path | None = None) -> Run:
    return tools(start(*args, cache=cache))[0]


def lines(run: Run, kind: str) -> list[str]:
    return [line for line in run.err.splitlines() if line.startswith(f"{kind}:")]


def one_line(run: Run, kind: str, *words: str, code: int) -> None:
    """Exit ``code``, no traceback, exactly one ``kind:`` line (``Error``/``Warning``) that says ``words``,
    and no line of the other kind."""
    assert run.code == code, (run.code, run.err)
    assert "Traceback" not in run.err, run.err
    found = lines(run, kind)
    assert len(found) == 1, run.err
    assert not lines(run, "Warning" if kind == "Error" else "Error"), run.err
    for word in words:
        assert word.lower() in found[0].lower(), (word, found[0])


@dataclass
class Scenes:
    root: Path
    model: Path
    other: Path
    scene: Path

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Scenes:
    """Two tiny test models (same architecture, other weights) and a small scene at their GSD."""
    root = tmp_path_factory.mktemp("faults_models")
    for name, seed in (("model.pt", 0), ("other.pt", 7)):
        model = TinyFCN(4, seed=seed)
        card = card_for(model, tile_size=64)
        model.arch["kwargs"] = {"seed": seed}
        save_checkpoint(model, root / name, classes=card.classes, input=card.input, tile_size=64)
    scene = write_scene(root / "scene.tif", random_scene(96, 96))
    return Scenes(root, root / "model.pt", root / "other.pt", scene)


def launch(s: Scenes, out: Path, *more, model: Path | None = None, cache: Path | None = None) -> subprocess.Popen:
    return start("predict", s.scene, "--checkpoint", model or s.model, "-o", out, "--quiet", "--threads", 1, *more,
                 cache=cache)


def predict(s: Scenes, out: Path, *more, model: Path | None = None, cache: Path | None = None) -> Run:
    return tools(launch(s, out, *more, model=model, cache=cache))[0]


def unchanged(s: Scenes, before: str, *folders: Path) -> None:
    assert digest(s.model, s.other, s.scene) == before
    assert not leftovers(*folders)


# -- 5. a model file is data, not instructions --------------------------------------------------------------

def with_card(s: Scenes, name: str, arch: dict | None = None, **extra) -> Path:
    """The test model file with ``arch`` fields and ``extra`` entries of its card changed."""
    payload = torch.load(s.model, weights_only=True)
    payload["card"]["arch"].update(arch or {})
    payload["card"]["extra"].update(extra)
    path = s.root / "cards" / f"{name}.pt"
    path.parent.mkdir(exist_ok=True)
    torch.save(payload, path)
    return path


KWARGS = {
    "pretrained": ({"kwargs": {"pretrained": True}}, "pretrained"),
    "pretrained_weights": ({"kwargs": {"pretrained_weights": "/etc/passwd"}}, "pretrained_weights"),
    "hub_backbone": ({"name": "abcnet", "kwargs": {"backbone": "hf-hub:timm/resnet18.a1_in1k"}}, "hub"),
    "unknown": ({"kwargs": {"depth": 3}}, "not a hyperparameter"),
    "ill_typed": ({"kwargs": {"seed": "zero"}}, "type"),
}
GSD_RANGES = {"strings": ["a", "b"], "zeros": [0, 0], "one_value": [0.1], "tiny": [1e-300, 1e-300],
              "reversed": [0.5, 0.1]}


def test_model_file_cannot_reach_out(scenes):
    cases = {name: (with_card(scenes, name, arch), words) for name, (arch, words) in KWARGS.items()}
    cases.update({f"gsd_range {name}": (with_card(scenes, name, gsd_range=span), "gsd_range")
                  for name, span in GSD_RANGES.items()})
    here = scenes.folder("cards_refused")
    before = digest(scenes.model, scenes.other, scenes.scene, scenes.root / "cards")
    names = list(cases)
    for pair in (names[i:i + 2] for i in range(0, len(names), 2)):
        runs = tools(*(launch(scenes, here / "m.tif", model=cases[n][0], cache=here / "cache") for n in pair))
        for name, run in zip(pair, runs):
            one_line(run, "Error", "invalid model card", cases[name][1], code=1)
    assert digest(scenes.model, scenes.other, scenes.scene, scenes.root / "cards") == before
    assert not list(here.iterdir())


def test_onnx_card_checked_against_its_graph(scenes):
    here = scenes.folder("onnx_card")
    graph = here / "model.onnx"
    export_onnx(*load_checkpoint(scenes.model), graph)
    proto = onnx.load(str(graph))
    card = next(p for p in proto.metadata_props if p.key == CARD_KEY)
    card.value = card.value.replace('"num_classes": 4', '"num_classes": 5').replace(
        '"names": ["class_0"', '"names": ["extra", "class_0"').replace('"colors": [', '"colors": [[1, 2, 3], ')
    onnx.save(proto, str(graph))
    before = digest(here, scenes.model, scenes.scene)
    run = predict(scenes, here / "m.tif", model=graph)
    one_line(run, "Error", "5 classes", "graph", code=1)
    assert digest(here, scenes.model, scenes.scene) == before


# -- 4. the ONNX cache is a cache, not a trust anchor -------------------------------------------------------

@pytest.fixture(scope="module")
def reference(scenes) -> dict[str, np.ndarray]:
    """Each model's mask, exported into a fresh cache (ONNX Runtime) and with PyTorch."""
    here = scenes.folder("reference")
    models = (scenes.model, scenes.other)
    for run in tools(*(launch(scenes, here / f"{m.stem}.tif", model=m, cache=here / m.stem) for m in models)):
        assert run.code == 0 and not run.err.strip(), run.err
    masks = {m.stem: read_mask(here / f"{m.stem}.tif") for m in models}
    assert (masks["model"] != masks["other"]).mean() > 0.3
    return masks


def cache_entry(cache: Path) -> Path:
    exports = [p for p in (cache / "rsseg" / "onnx").glob("*.onnx") if ".ort" not in p.name]
    assert len(exports) == 1, exports
    return exports[0]


@pytest.mark.parametrize("case", ["replaced", "truncated", "optimized_replaced"])
def test_cache_entry_is_checked_against_its_model(scenes, reference, case):
    here = scenes.folder(f"cache_{case}")
    mine, theirs = here / "mine", here / "theirs"
    runs = tools(*(launch(scenes, here / f"{cache.name}.tif", model=model, cache=cache)
                   for cache, model in ((mine, scenes.model), (theirs, scenes.other))))
    assert [run.code for run in runs] == [0, 0]
    entry = cache_entry(mine)
    if case == "replaced":
        shutil.copyfile(cache_entry(theirs), entry)
        for optimized in entry.parent.glob("*.ort*.onnx"):
            optimized.unlink()
    elif case == "truncated":
        entry.write_bytes(entry.read_bytes()[:entry.stat().st_size // 2])
    else:
        [ours] = entry.parent.glob("*.ort*.onnx")
        [other] = cache_entry(theirs).parent.glob("*.ort*.onnx")
        shutil.copyfile(other, ours)
    before = digest(scenes.model, scenes.other, scenes.scene)
    run = predict(scenes, here / "m.tif", cache=mine)
    if case == "optimized_replaced":  # the optimised graph is made again from the checked export, silently
        assert run.code == 0 and not run.err.strip(), run.err
    else:
        one_line(run, "Warning", "not made from this model file", code=0)
    np.testing.assert_array_equal(read_mask(here / "m.tif"), reference["model"])
    unchanged(scenes, before, here)
    again = predict(scenes, here / "again.tif", cache=mine)  # repaired: silent from now on
    assert again.code == 0 and not again.err.strip(), again.err


@pytest.mark.parametrize("case", ["cache_is_a_file", "parent_is_a_file"])
def test_unusable_cache_falls_back_to_pytorch(scenes, reference, case):
    here = scenes.folder(f"cache_{case}")
    cache = here / "cache"
    blocked = cache / "rsseg" / "onnx" if case == "cache_is_a_file" else cache / "rsseg"
    blocked.parent.mkdir(parents=True)
    blocked.write_bytes(b"not a folder")
    before = digest(scenes.model, scenes.other, scenes.scene, blocked)
    run, strict = tools(launch(scenes, here / "m.tif", cache=cache),
                        launch(scenes, here / "strict.tif", "--runtime", "onnx", cache=cache))
    one_line(run, "Warning", "running with PyTorch", "ONNX cache unusable", code=0)
    np.testing.assert_array_equal(read_mask(here / "m.tif"), reference["model"])
    one_line(strict, "Error", "ONNX cache unusable", code=1)
    assert not (here / "strict.tif").exists()
    assert digest(scenes.model, scenes.other, scenes.scene, blocked) == before
    assert not leftovers(here)


# -- 6. bounded work ----------------------------------------------------------------------------------------

def test_unbounded_work_is_refused_in_one_line(scenes):
    from rasterio.transform import from_origin

    here = scenes.folder("bounded")
    coarse = write_scene(here / "coarse.tif", random_scene(64, 64), transform=from_origin(500000, 5400000, 2.0, 2.0))
    polar = write_scene(here / "polar.tif", random_scene(64, 64), crs="EPSG:4326",
                        transform=from_origin(10.0, 200.0, 1e-5, 1e-5))
    before = digest(here, scenes.model, scenes.scene)
    cases = {
        "coarse scene": (["predict", coarse, "-o", here / "a.tif"], ["2 m", "0.09 m", "16×", "--gsd native"]),
        "--gsd 99999": (["predict", scenes.scene, "-o", here / "b.tif", "--gsd", 99999], ["1e+05 m", "0.09 m"]),
        "--gsd 1e9": (["predict", scenes.scene, "-o", here / "c.tif", "--gsd", "1e9"], ["--gsd 1e9", "within"]),
        "latitude 200": (["predict", polar, "-o", here / "d.tif"], ["polar.tif", "latitude 200"]),
        "export --tile 100000": (["export", scenes.model, "-o", here / "e.onnx", "--tile", 100000],
                                 ["--tile 100000", "4096"]),
    }
    names = list(cases)
    for pair in (names[i:i + 2] for i in range(0, len(names), 2)):
        runs = tools(*(start(*cases[n][0], *(["--checkpoint", scenes.model] if cases[n][0][0] == "predict" else []),
                             "--quiet", cache=scenes.root / "bounded_cache") for n in pair))
        for name, run in zip(pair, runs):
            one_line(run, "Error", *cases[name][1], code=1)
    assert digest(here, scenes.model, scenes.scene) == before
    assert sorted(p.name for p in here.iterdir()) == ["coarse.tif", "polar.tif"]


# -- 10. formats and words ----------------------------------------------------------------------------------

def test_geotiff_outputs_under_other_formats_names_are_refused(scenes):
    here = scenes.folder("formats")
    (here / "old.png").write_bytes(b"an existing picture")
    before = digest(here, scenes.model, scenes.scene)
    cases = [(["-o", here / "m.png"], "PNG"), (["-o", here / "m.tif", "--probs", here / "p.jpg"], "JPEG"),
             (["-o", here / "m.tif", "--confidence", here / "old.png", "--overwrite"], "PNG")]
    for pair in (cases[i:i + 2] for i in range(0, len(cases), 2)):
        runs = tools(*(start("predict", scenes.scene, "--checkpoint", scenes.model, *args, "--quiet", "--runtime",
                             "torch", cache=scenes.root / "formats_cache") for args, _ in pair))  # no shared export
        for (_, driver), run in zip(pair, runs):
            one_line(run, "Error", "written as a GeoTIFF", driver, ".tif", code=1)
    assert digest(here, scenes.model, scenes.scene) == before
    assert [p.name for p in here.iterdir()] == ["old.png"]


def test_one_class_margin_and_geopackage_version(scenes):
    import sqlite3

    import rasterio

    here = scenes.folder("one_class")
    model = TinyFCN(1)
    card = card_for(model, num_classes=1, tile_size=64)
    save_checkpoint(model, here / "one.pt", classes=card.classes, input=card.input, tile_size=64)
    before = digest(here / "one.pt", scenes.scene)
    run = predict(scenes, here / "m.tif", "--confidence", here / "c.tif", "--vector", here / "v.gpkg",
                  model=here / "one.pt", cache=scenes.root / "one_class_cache")
    assert run.code == 0 and "Traceback" not in run.err and not lines(run, "Error"), run.err
    with rasterio.open(here / "c.tif") as ds:
        top, margin, entropy = ds.read()
    assert (top == 255).all() and (margin == 255).all() and (entropy == 0).all()  # no runner-up: no tie
    with sqlite3.connect(here / "v.gpkg") as db:  # GeoPackage 1.2: user_version 10200
        assert db.execute("pragma user_version").fetchone() == (10200,)
    assert digest(here / "one.pt", scenes.scene) == before
    assert not leftovers(here)


# -- 8. the mosaic carries the same georeference as the masks -----------------------------------------------

def two_scenes(here: Path, shift: tuple[float, float], crs: str | None = "EPSG:32632", rotation: float = 0.0
               ) -> list[Path]:
    """Two 64-px scenes, the second ``shift`` (columns, rows) of the first's pixels away on its grid."""
    from rasterio.transform import Affine

    first = Affine.translation(500000, 5400000) * Affine.rotation(rotation) * Affine.scale(0.09, -0.09)
    second = first * Affine.translation(*shift)
    return [write_scene(here / f"{name}.tif", random_scene(64, 64, seed=i), crs=crs, transform=t)
            for i, (name, t) in enumerate((("a", first), ("b", second)))]


def catalogue(scenes: Scenes, inputs: list[Path], out: Path, *more) -> Run:
    return tool("predict", *inputs, "--checkpoint", scenes.model, "--out-dir", out, "--quiet", "--threads", 1,
                *more, cache=scenes.root / "mosaic_cache")


def test_rotated_grid_mosaic_is_exact(scenes):
    import rasterio

    here = scenes.folder("mosaic_rotated")
    inputs = two_scenes(here, (40, 24), rotation=30.0)
    run = catalogue(scenes, inputs, here / "out")
    assert run.code == 0 and "Traceback" not in run.err and not lines(run, "Error"), run.err
    with rasterio.open(here / "out" / "mosaic.vrt") as mosaic:
        with rasterio.open(here / "out" / "a_mask.tif") as a, rasterio.open(here / "out" / "b_mask.tif") as b:
            assert mosaic.transform.almost_equals(a.transform) and mosaic.crs == a.crs
            assert (mosaic.width, mosaic.height) == (104, 88)
            assert mosaic.transform * (40, 24) == pytest.approx(b.transform * (0, 0))
            whole = mosaic.read(1)
            np.testing.assert_array_equal(whole[24:, 40:], b.read(1))  # the later scene wins where both lie
            np.testing.assert_array_equal(whole[:24, :64], a.read(1)[:24])


@pytest.mark.parametrize("case", ["no_crs", "half_pixel"])
def test_no_exact_mosaic_says_so_and_leaves_none(scenes, case):
    here = scenes.folder(f"mosaic_{case}")
    (here / "first").mkdir()
    aligned = two_scenes(here / "first", (40, 0))
    assert catalogue(scenes, aligned, here / "out").code == 0
    assert (here / "out" / "mosaic.vrt").is_file()  # an earlier run's mosaic, about to be stale
    inputs = two_scenes(here, (40.5, 0)) if case == "half_pixel" else two_scenes(here, (40, 0), crs=None)
    before = digest(*inputs, scenes.model)
    run = catalogue(scenes, inputs, here / "out", "--overwrite")
    assert run.code == 0 and "Traceback" not in run.err and not lines(run, "Error"), run.err
    mosaic = [line for line in lines(run, "Warning") if "mosaic" in line]
    assert len(mosaic) == 1, run.err
    assert all(w in mosaic[0] for w in (["no CRS"] if case == "no_crs" else ["offset by", "0.5"]))
    assert not (here / "out" / "mosaic.vrt").exists()
    assert digest(*inputs, scenes.model) == before and not leftovers(here)


# -- 9. a name is a name ------------------------------------------------------------------------------------

def test_existing_names_are_files_not_patterns(scenes):
    here = scenes.folder("names")
    odd = [here / name for name in ("@a.tif", "b[1].tif", "c*.tif")]
    for i, path in enumerate(odd):
        write_scene(path, random_scene(64, 64, seed=i))
    decoys = [write_scene(here / name, random_scene(64, 64, seed=9)) for name in ("b1.tif", "cx.tif")]
    before = digest(*odd, *decoys, scenes.model)  # the decoys: what "b[1].tif" and "c*.tif" match as patterns
    run = catalogue(scenes, odd, here / "out")
    assert run.code == 0 and "Traceback" not in run.err and not lines(run, "Error"), run.err
    assert sorted(p.name for p in (here / "out").glob("*_mask.tif")) == ["@a_mask.tif", "b[1]_mask.tif",
                                                                          "c*_mask.tif"]
    missing = catalogue(scenes, [here / "d[0-9].tif"], here / "out2")  # no such file: a pattern, matching none
    one_line(missing, "Error", "d[0-9].tif", "no file matches", code=1)
    assert not (here / "out2").exists() or not list((here / "out2").iterdir())
    assert digest(*odd, *decoys, scenes.model) == before and not leftovers(here)


def test_new_run_with_no_time_says_so(scenes):
    from rsseg.data.generic import prepare_generic

    here = scenes.folder("no_time")
    labels = write_scene(here / "labels.tif", np.repeat(np.repeat(np.arange(16).reshape(4, 4) % 4, 24, 0), 24, 1)
                         .astype(np.uint8)[None])
    prepare_generic([scenes.scene], [labels], "a,b,c,d", here / "patches", patch=64, stride=32, val_fraction=0.34)
    before = digest(here)
    run = tool("train", "--data", here / "patches", "--model", "test_tiny_fcn", "--max-minutes", "1e-9",
               "--batch-size", 2, "--tile", 64, "--device", "cpu", "--workers", 0, "--threads", 1, "-o", here / "run")
    one_line(run, "Error", "max_minutes 1e-09", "before the first epoch", code=1)
    assert "already spent" not in run.err
    assert digest(here) == before and not (here / "run").exists() and not leftovers(here)


def test_no_raw_gdal_lines_from_overviews(scenes):
    """The bundled model on a 1024-px scene: GDAL used to print a palette warning from the overviews."""
    import rasterio

    here = scenes.folder("overviews")
    scene = write_scene(here / "big.tif", random_scene(1024, 1024))
    proc = subprocess.run([sys.executable, "-m", "rsseg.cli", "predict", scene, "-o", here / "m.tif", "--quiet"],
                          env={**ENV, "XDG_CACHE_HOME": str(scenes.root / "ov_cache")}, capture_output=True, text=True,
                          timeout=600)  # the plain CLI: the test models' runner hides GDAL's lines
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    assert run.code == 0 and "Traceback" not in run.err, run.err
    assert "CPLE" not in run.err and "palette" not in run.err, run.err
    with rasterio.open(here / "m.tif") as ds:
        assert ds.overviews(1) and ds.colormap(1)[1] and ds.tags(ns="rio_overview")["resampling"] == "mode"
