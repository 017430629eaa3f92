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


def tool(*args, cache: Path | None = None) -> Run:
    """``rsseg ARGS`` with the test models registered, in a child process (``cache``: its XDG_CACHE_HOME)."""
    env = {**ENV, **({"XDG_CACHE_HOME": str(cache)} if cache else {})}
    proc = subprocess.run([sys.executable, str(TESTS / "rsseg_with_test_models.py"), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    return Run(proc.returncode, proc.stdout, proc.stderr)


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


def predict(s: Scenes, out: Path, *more, model: Path | None = None, cache: Path | None = None) -> Run:
    return tool("predict", s.scene, "--checkpoint", model or s.model, "-o", out, "--quiet", "--threads", 1, *more,
                cache=cache)


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


@pytest.mark.parametrize("case", [*sorted(KWARGS), *(f"gsd_range_{k}" for k in sorted(GSD_RANGES))])
def test_model_file_cannot_reach_out(scenes, case):
    here = scenes.folder(f"card_{case}")
    if case in KWARGS:
        model, words = with_card(scenes, case, KWARGS[case][0]), KWARGS[case][1]
    else:
        model, words = with_card(scenes, case, gsd_range=GSD_RANGES[case.removeprefix("gsd_range_")]), "gsd_range"
    before = digest(scenes.model, scenes.other, scenes.scene, model)
    run = predict(scenes, here / "m.tif", model=model, cache=here / "cache")
    one_line(run, "Error", "invalid model card", words, code=1)
    assert digest(scenes.model, scenes.other, scenes.scene, model) == before
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
    masks = {}
    for model in (scenes.model, scenes.other):
        run = predict(scenes, here / f"{model.stem}.tif", model=model, cache=here / "cache")
        assert run.code == 0 and not run.err.strip(), run.err
        masks[model.stem] = read_mask(here / f"{model.stem}.tif")
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
    for cache, model in ((mine, scenes.model), (theirs, scenes.other)):
        assert predict(scenes, here / f"{cache.name}.tif", model=model, cache=cache).code == 0
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
    run = predict(scenes, here / "m.tif", cache=cache)
    one_line(run, "Warning", "running with PyTorch", "ONNX cache unusable", code=0)
    np.testing.assert_array_equal(read_mask(here / "m.tif"), reference["model"])
    strict = predict(scenes, here / "strict.tif", "--runtime", "onnx", cache=cache)
    one_line(strict, "Error", "ONNX cache unusable", code=1)
    assert not (here / "strict.tif").exists()
    assert digest(scenes.model, scenes.other, scenes.scene, blocked) == before
    assert not leftovers(here)
