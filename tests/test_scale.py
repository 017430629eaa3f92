"""Many scenes in one command, resuming killed runs, and torch.distributed ranks (gloo, CPU)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import shapely
from affine import Affine
from conftest import TRANSFORM, TinyFCN, random_scene, run_cli, write_scene

from rsseg.io.inputs import expand_inputs
from rsseg.io.vrt import write_mosaic_vrt
from rsseg.models import save_checkpoint
from rsseg.tiling import predict_scene
from rsseg.tiling.journal import BandJournal, partial_dir

ENTRY = Path(__file__).parent / "rsseg_with_test_models.py"


def save_model(path: Path, name: str = "test_tiny_fcn") -> Path:
    model = TinyFCN(4)
    model.arch = {"name": name, "num_classes": 4, "in_channels": 3, "kwargs": {}}
    save_checkpoint(model, path, tile_size=64, mean=[0.5] * 3, std=[0.25] * 3, class_names=list("abcd"))
    return path


def tile_grid(folder: Path, rows: int, cols: int, size: tuple[int, int]) -> list[Path]:
    """Adjacent tiles cut from one scene: the orthophoto grid of a city."""
    h, w = size
    data = random_scene(rows * h, cols * w, seed=5)
    paths = []
    for r in range(rows):
        for c in range(cols):
            transform = TRANSFORM * Affine.translation(c * w, r * h)
            paths.append(write_scene(folder / f"tile_{r}{c}.tif", data[:, r * h:(r + 1) * h, c * w:(c + 1) * w].copy(),
                                     transform=transform))
    return paths


def rsseg_process(args: list[str], **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ENTRY), *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


# ---- many inputs, one command -------------------------------------------------------------------

def test_inputs_folders_globs_and_lists(tmp_path):
    paths = tile_grid(tmp_path, 1, 3, (32, 32))
    (tmp_path / "notes.txt").write_text("x")
    sub = tmp_path / "lists"
    sub.mkdir()
    (sub / "scenes.txt").write_text(f"# two tiles\n../tile_00.tif\n\n{paths[2]}\n")
    assert expand_inputs([str(tmp_path)]) == paths
    assert expand_inputs([str(tmp_path / "tile_0[12].tif"), str(paths[1])]) == paths[1:]
    assert [p.resolve() for p in expand_inputs([f"@{sub / 'scenes.txt'}"])] == [paths[0], paths[2]]
    with pytest.raises(Exception, match="no file matches"):
        expand_inputs([str(tmp_path / "*.jp2")])


def test_out_dir_mosaic_and_catalogue_vector_equal_vectorize_of_mosaic(tmp_path, capsys):
    """Polygons cut by tile borders are merged: the layer equals `rsseg vectorize DIR/mosaic.vrt`."""
    tiles = tile_grid(tmp_path, 2, 2, (96, 80))
    ckpt = save_model(tmp_path / "m.pt")
    out = tmp_path / "out"
    code, text = run_cli(["predict", str(tmp_path / "tile_*.tif"), "--out-dir", str(out), "--checkpoint", str(ckpt),
                          "--probs", "--vector", "--quiet", "--threads", "1"], capsys)
    assert code == 0, text
    assert "4 scenes: 4 done, 0 failed" in text and text.count("tile_") >= 4
    for t in tiles:
        assert (out / f"{t.stem}_mask.tif").exists() and (out / f"{t.stem}_probs.tif").exists()
        assert (out / f"{t.stem}_polygons.gpkg").exists()
    with rasterio.open(out / "mosaic.vrt") as vrt:
        assert vrt.shape == (192, 160) and vrt.transform == TRANSFORM and vrt.nodata == 255
        mosaic = vrt.read(1)
    for t in tiles:
        with rasterio.open(out / f"{t.stem}_mask.tif") as m:
            r, c = int(t.stem[-2]), int(t.stem[-1])
            assert (mosaic[r * 96:(r + 1) * 96, c * 80:(c + 1) * 80] == m.read(1)).all()
    catalog = json.loads((out / "catalog.json").read_text())
    assert [s["status"] for s in catalog["scenes"]] == ["done"] * 4
    code, text = run_cli(["vectorize", str(out / "mosaic.vrt"), "-o", str(tmp_path / "ref.gpkg"),
                          "--probs", str(out / "mosaic_probs.vrt")], capsys)
    assert code == 0, text
    ours, ref = gpd.read_file(out / "mosaic.gpkg"), gpd.read_file(tmp_path / "ref.gpkg")
    assert len(ours) == len(ref) > 0
    key = ["class_id", "area_m2"]
    ours, ref = ours.sort_values(key).reset_index(drop=True), ref.sort_values(key).reset_index(drop=True)
    assert shapely.equals(ours.geometry.values, ref.geometry.values).all()
    per_tile = sum(len(gpd.read_file(out / f"{t.stem}_polygons.gpkg")) for t in tiles)
    assert len(ours) < per_tile  # regions crossing tile borders became one polygon


def test_bad_scene_is_reported_others_go_on_and_rerun_redoes_nothing(tmp_path, capsys):
    tiles = tile_grid(tmp_path, 1, 2, (64, 64))
    bad = tmp_path / "broken.tif"
    bad.write_text("not an image")
    listing = tmp_path / "scenes.txt"
    listing.write_text("\n".join(p.name for p in [tiles[0], bad, tiles[1]]))
    ckpt = save_model(tmp_path / "m.pt")
    args = ["predict", f"@{listing}", "--out-dir", str(tmp_path / "out"), "--checkpoint", str(ckpt), "--quiet"]
    code, text = run_cli(args, capsys)
    assert code == 1
    assert "Error: " in text and "broken.tif" in text and "3 scenes: 2 done, 1 failed" in text
    assert all((tmp_path / "out" / f"{t.stem}_mask.tif").exists() for t in tiles)
    assert not (tmp_path / "out" / "broken_mask.tif").exists()
    bad.unlink()
    listing.write_text("\n".join(p.name for p in tiles))
    before = (tmp_path / "out" / "tile_00_mask.tif").stat().st_mtime_ns
    code, text = run_cli(args, capsys)
    assert code == 0 and text.count("finished earlier") == 2, text
    assert (tmp_path / "out" / "tile_00_mask.tif").stat().st_mtime_ns == before


def test_vrt_mosaic_of_scenes_is_one_scene(tmp_path, capsys):
    tiles = tile_grid(tmp_path, 2, 2, (40, 48))
    write_mosaic_vrt(tiles, tmp_path / "city.vrt")
    ckpt = save_model(tmp_path / "m.pt")
    (tmp_path / "out").mkdir()
    code, text = run_cli(["predict", str(tmp_path / "city.vrt"), "--checkpoint", str(ckpt), "--quiet", "--probs",
                          "-o", str(tmp_path / "out" / "city_mask.tif")], capsys)
    assert code == 0, text
    with rasterio.open(tmp_path / "out" / "city_mask.tif") as ds, rasterio.open(tmp_path / "city.vrt") as src:
        assert ds.shape == (80, 96) == src.shape and ds.transform == TRANSFORM and (ds.read(1) < 4).all()
    assert (tmp_path / "out" / "city_probs.tif").exists()  # --probs as a flag: beside the mask


def test_several_scenes_need_out_dir(tmp_path, capsys):
    tiles = tile_grid(tmp_path, 1, 2, (32, 32))
    code, text = run_cli(["predict", *map(str, tiles)], capsys)
    assert code == 2 and "--out-dir" in text


# ---- resumable at band granularity ----------------------------------------------------------------

class Killed(BaseException):
    """Stands in for a signal: not an Exception, so the journal is kept as after SIGKILL."""


def killing_save(original, after_bands: int):
    """``BandJournal.save`` that stores ``after_bands`` bands, then raises :class:`Killed`."""
    saved = []

    def save(self, band, arrays):
        if len(saved) == after_bands:
            raise Killed
        original(self, band, arrays)
        saved.append(band)
    return save


def interrupted_run(monkeypatch, after_bands: int, *args, **kw):
    with monkeypatch.context() as m:
        m.setattr(BandJournal, "save", killing_save(BandJournal.save, after_bands))
        with pytest.raises(Killed):
            predict_scene(*args, **kw)


def test_resume_is_byte_identical_and_options_restart(tmp_path, tiny, monkeypatch):
    model, card = tiny
    scene = write_scene(tmp_path / "s.tif", random_scene(300, 150))
    kw = dict(progress=False, band_rows=64, batch_size=3, threads=1)
    predict_scene(scene, tmp_path / "ref.tif", model, card, probs=tmp_path / "ref_p.tif", **kw)
    out, probs = tmp_path / "m.tif", tmp_path / "p.tif"
    finished = 0
    for more in (0, 1, 2):  # killed before any band, after one more band, after two more
        interrupted_run(monkeypatch, more, scene, out, model, card, probs=probs, **kw)
        finished += more
        assert not out.exists() and not probs.exists()  # final names only when complete
        assert len(list(partial_dir(out).glob("rows-*.npz"))) == finished
    report = predict_scene(scene, out, model, card, probs=probs, **kw)
    assert report.resumed_row == 192
    assert same_bytes(out, tmp_path / "ref.tif") and same_bytes(probs, tmp_path / "ref_p.tif")
    assert not partial_dir(out).exists()

    interrupted_run(monkeypatch, 2, scene, out, model, card, probs=probs, overwrite=True, **kw)
    changed = predict_scene(scene, out, model, card, probs=probs, overwrite=True, **{**kw, "batch_size": 2})
    assert changed.resumed_row is None  # another batch size: another key, the scene starts afresh
    interrupted_run(monkeypatch, 2, scene, out, model, card, probs=probs, overwrite=True, **kw)
    other = TinyFCN(4, seed=1)  # another model: another key
    assert predict_scene(scene, out, other, card, probs=probs, overwrite=True, **kw).resumed_row is None
    interrupted_run(monkeypatch, 2, scene, out, model, card, probs=probs, overwrite=True, **kw)
    assert predict_scene(scene, out, model, card, probs=probs, overwrite=True, restart=True, **kw).resumed_row is None
    assert same_bytes(out, tmp_path / "ref.tif")


def test_kill_9_at_several_points_then_resume_byte_identical(tmp_path, capsys):
    scene = write_scene(tmp_path / "long.tif", random_scene(1600, 64))
    ckpt = save_model(tmp_path / "slow.pt", "test_slow_fcn")
    # --runtime torch: the model's sleep (what makes it slow enough to kill) exists in PyTorch only
    base = ["predict", str(scene), "--checkpoint", str(ckpt), "--runtime", "torch", "--batch-size", "1",
            "--threads", "1", "--quiet",
            "--probs", str(tmp_path / "p.tif"), "-o", str(tmp_path / "m.tif")]
    code, text = run_cli([*base[:-4], "--probs", str(tmp_path / "rp.tif"), "-o", str(tmp_path / "rm.tif")], capsys)
    assert code == 0, text
    journal = partial_dir(tmp_path / "m.tif")
    resumed = []
    for bands_before_kill in (1, 3):
        proc = rsseg_process(base)
        while len(list(journal.glob("rows-*.npz"))) < bands_before_kill and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        text = proc.communicate()[0]
        resumed += [line for line in text.splitlines() if line.startswith("resumed")]
        assert not (tmp_path / "m.tif").exists() and journal.exists()
    final = subprocess.run([sys.executable, str(ENTRY), *base], capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    lines = [line for line in (resumed + final.stderr.splitlines()) if line.startswith("resumed long.tif at row ")]
    assert len(lines) == 2 and lines[-1].startswith("resumed long.tif at row 1536 of 1600"), lines
    assert same_bytes(tmp_path / "m.tif", tmp_path / "rm.tif") and same_bytes(tmp_path / "p.tif", tmp_path / "rp.tif")
    assert not journal.exists()


# ---- torch.distributed ranks ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(args: list[str], world: int = 2) -> list[str]:
    """What torchrun does: one process per rank with RANK/WORLD_SIZE/LOCAL_RANK and a rendezvous."""
    port = str(free_port())
    procs = [rsseg_process(args, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=port) for r in range(world)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    return outputs


def test_two_ranks_byte_identical_to_one_process_for_a_list_and_a_split_scene(tmp_path, capsys, monkeypatch):
    tiles = tile_grid(tmp_path, 1, 3, (96, 112))
    big = write_scene(tmp_path / "big.tif", random_scene(1100, 96, seed=2))
    ckpt = save_model(tmp_path / "m.pt")
    common = ["--checkpoint", str(ckpt), "--threads", "1", "--quiet", "--device", "cpu"]
    code, text = run_cli(["predict", *map(str, tiles), str(big), "--out-dir", str(tmp_path / "one"), "--probs",
                          *common], capsys)
    assert code == 0, text
    outputs = run_ranks(["predict", *map(str, tiles), "--out-dir", str(tmp_path / "two"), "--probs", *common])
    assert "3 scenes: 3 done" in outputs[0]
    split_args = ["predict", str(big), "--out-dir", str(tmp_path / "split"), "--probs", *common]
    with monkeypatch.context() as m:  # a single process killed after its first band...
        m.setattr(BandJournal, "save", killing_save(BandJournal.save, 1))
        with pytest.raises(Killed):
            run_cli(split_args, capsys)
    outputs = run_ranks(split_args)  # ...resumed by two ranks
    assert "1 scenes: 1 done" in outputs[0] and "resumed big.tif at row 512 of 1100" in outputs[0]
    for t in tiles:
        for kind in ("mask", "probs"):
            assert same_bytes(tmp_path / "one" / f"{t.stem}_{kind}.tif", tmp_path / "two" / f"{t.stem}_{kind}.tif")
    for kind in ("mask", "probs"):
        assert same_bytes(tmp_path / "one" / f"big_{kind}.tif", tmp_path / "split" / f"big_{kind}.tif")
    with rasterio.open(tmp_path / "split" / "big_mask.tif") as ds:
        assert (ds.read(1) < 4).all()
