"""Plug-ins: a dataset or a model in a module of its own, found through an installed entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import random_scene, write_scene

from rsseg.data.patches import read_dataset_info
from rsseg.data.registry import DatasetParameter, list_datasets, register_dataset
from rsseg.errors import RssegError
from rsseg.models import list_models
from rsseg.plugins import Registry

DATASET_MODULE = '''
from pathlib import Path

from rsseg.data.prepare import PatchFolderWriter, PrepareResult, Scene, read_scene
from rsseg.data.registry import DatasetParameter, register_dataset
from rsseg.schema import ClassSchema


@register_dataset("tinyset", title="A tiny test set", layout="scene.tif + labels.tif",
                  parameters=(DatasetParameter("val_rows", "Bottom rows kept for validation."),))
def prepare_tinyset(src, out, patch=64, stride=32, val_rows=16, overwrite=False, progress=True):
    image, transform, crs = read_scene(Path(src) / "scene.tif")
    labels = read_scene(Path(src) / "labels.tif")[0][0]
    top = image.shape[1] - val_rows
    with PatchFolderWriter(Path(out), ClassSchema(("ground", "roof")), "tinyset", patch, stride, overwrite,
                           inputs=[Path(src)]) as writer:
        writer.add("train", Scene("scene", image[:, :top], labels[:top], transform, crs))
        writer.add("val", Scene("scene_val", image[:, top:], labels[top:], transform, crs))
        return PrepareResult(writer.finish(), writer.summary())
'''

MODEL_MODULE = '''
from torch import nn

from rsseg.models.base import SegmentationModel
from rsseg.models.registry import register_model


class TinyNet(SegmentationModel):
    def __init__(self, num_classes, in_channels=3, width=4):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, num_classes, 1))

    def forward(self, x):
        return self.net(x)


@register_model("tinynet", paper="A test plug-in")
def build(num_classes, in_channels=3, width=4):
    return TinyNet(num_classes, in_channels, width)
'''


def install_plugin(root: Path, entry_points: str, **modules: str) -> dict[str, str]:
    """Modules and a ``.dist-info`` with their entry points in ``root`` (what ``pip install`` leaves),
    and the environment of a Python process that has ``root`` on its path."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / "rsseg_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rsseg-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def rsseg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsseg.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_dataset_plugin_gets_a_prepare_command(tmp_path):
    env = install_plugin(tmp_path, "[rsseg.datasets]\ntinyset = tinyset_plugin\n", tinyset_plugin=DATASET_MODULE)
    listing = rsseg(env, "prepare", "--help")
    assert listing.returncode == 0, listing.stderr
    assert "tinyset    A tiny test set (scene.tif + labels.tif)." in listing.stdout
    assert all(name in listing.stdout for name in ("generic", "potsdam", "uavid", "vaihingen"))
    usage = rsseg(env, "prepare", "tinyset", "--help")
    assert "--val-rows INTEGER" in usage.stdout and "[default: 16]" in usage.stdout
    assert "[default: 64; x>=16]" in usage.stdout  # --patch: the prepare function's default

    src = tmp_path / "src"
    src.mkdir()
    labels = (np.arange(96)[:, None] // 48 + np.zeros((1, 64), int)).astype(np.uint8)[None]  # roof below row 48
    write_scene(src / "scene.tif", random_scene(96, 64))
    write_scene(src / "labels.tif", labels)
    run = rsseg(env, "prepare", "tinyset", "--src", str(src), "-o", str(tmp_path / "patches"), "--patch", "32",
                "--stride", "32", "--val-rows", "32", "--quiet")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{tmp_path / 'patches'}: 4 train, 2 val, 0 test patches of 32 px"
    info = read_dataset_info(tmp_path / "patches")
    assert info.name == "tinyset" and info.classes.names == ("ground", "roof") and info.counts["val"] == 2
    with rasterio.open(tmp_path / "patches" / "val" / "masks" / "scene_val_0_0.tif") as ds:
        assert (ds.read(1) == 1).all()
    with rasterio.open(tmp_path / "patches" / "train" / "masks" / "scene_0_0.tif") as ds:
        assert (ds.read(1) == 0).all()

    bad = rsseg(env, "prepare", "tinyset", "--src", str(src), "-o", str(tmp_path / "p2"), "--val-rows", "x")
    assert bad.returncode == 2 and "'x' is not a valid integer" in bad.stderr
    assert "tinyset" not in {d.name for d in list_datasets()}  # this process has no such plug-in


def test_model_plugin_is_listed_and_built(tmp_path):
    env = install_plugin(tmp_path, "[rsseg.models]\ntinynet = tinynet_plugin\n", tinynet_plugin=MODEL_MODULE)
    build = subprocess.run([sys.executable, "-c", "from rsseg.models import create_model\n"
                            "model = create_model('tinynet', 5, in_channels=4, width=6)\n"
                            "print(type(model).__name__, model.arch)"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    assert build.stdout.strip() == ("TinyNet {'name': 'tinynet', 'num_classes': 5, 'in_channels': 4, "
                                    "'kwargs': {'width': 6}}")
    table = rsseg(env, "models", "--markdown", "--quiet")
    assert table.returncode == 0, table.stderr
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table.stdout.splitlines()[2:]}
    assert rows.keys() == {e.name for e in list_models()} - {"test_tiny_fcn", "test_slow_fcn"} | {"tinynet"}
    assert "| tinynet | A test plug-in | - |" in rows["tinynet"]


def test_broken_plugin_is_one_clear_line(tmp_path):
    env = install_plugin(tmp_path, "[rsseg.datasets]\nbroken = broken_plugin\n",
                         broken_plugin="raise ImportError('needs the frobnicate package')\n")
    result = rsseg(env, "prepare", "--help")
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: plug-in broken = broken_plugin (rsseg.datasets): "
                                     "needs the frobnicate package")


def test_registry_refuses_a_name_twice_and_a_prepare_function_without_the_common_parameters():
    registry: Registry[str] = Registry("widget", "rsseg.data.datasets", "rsseg.test-widgets")
    registry.add("a", "first")
    with pytest.raises(RssegError, match="widget 'a' registered twice"):
        registry.add("a", "second")
    with pytest.raises(RssegError, match="unknown widget 'b'; known: a"):
        registry.get("b")

    def prepare_nosrc(out, patch, progress, level):
        """Lacks src, stride and overwrite."""

    with pytest.raises(RssegError, match="dataset 'nosrc': .*prepare_nosrc must take src, stride, overwrite$"):
        register_dataset("nosrc", title="t", layout="l")(prepare_nosrc)
    with pytest.raises(RssegError, match="dataset 'nodefault': give level a default"):
        register_dataset("nodefault", title="t", layout="l", parameters=(DatasetParameter("level", "h"),))(
            lambda src, out, patch, stride, level, overwrite, progress: None)
    with pytest.raises(RssegError, match="dataset 'vaihingen' registered twice"):
        register_dataset("vaihingen", title="t", layout="l")(
            lambda src, out, patch, stride, overwrite, progress: None)
