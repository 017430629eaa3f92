"""Scenes over HTTP: GDAL range requests against a server on 127.0.0.1 that counts the bytes it sends."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import CRS, TRANSFORM, SlowFCN, random_scene, run_cli, save_tiny_model, write_scene
from range_server import TOKEN, start

from rsseg.io.remote import public_url, remote_scene
from rsseg.models import save_checkpoint

BIG = 4096
CORNER = 256


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A model file, a small COG and a 4096² COG, served over HTTP; (folder, server)."""
    folder = tmp_path_factory.mktemp("remote")
    save_tiny_model(folder / "tiny.pt")
    write_scene(folder / "small.tif", random_scene(128, 160, seed=3), driver="COG")
    write_scene(folder / "whole.tif", np.random.default_rng(1).integers(0, 256, (3, 512, 512), dtype=np.uint8),
                driver="COG")  # large enough for GDAL to refuse it from a server without ranges
    rng = np.random.default_rng(0)
    write_scene(folder / "big.tif", rng.integers(0, 256, (3, BIG, BIG), dtype=np.uint8), driver="COG",
                compress="deflate", blocksize=512)
    server = start(folder)
    yield folder, server
    server.shutdown()


def _predict(folder, scene: str, out, capsys, *extra: str) -> tuple[int, str]:
    return run_cli(["predict", scene, "-o", str(out), "--checkpoint", str(folder / "tiny.pt"), "--tile", "64",
                    "--threads", "1", "--quiet", *extra], capsys)


def test_remote_scene_equals_the_local_file_and_records_no_token(served, tmp_path, capsys):
    folder, server = served
    code, text = _predict(folder, str(folder / "small.tif"), tmp_path / "local.tif", capsys)
    assert code == 0, text
    url = f"{server.url}/private/small.tif?token={TOKEN}"
    code, text = _predict(folder, url, tmp_path / "remote.tif", capsys, "--vector")
    assert code == 0, text
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "remote.tif") as b:
        assert (a.read() == b.read()).all() and b.crs == CRS and b.transform == TRANSFORM
    record = json.loads((tmp_path / "remote.json").read_text())
    assert record["scene"] == f"{server.url}/private/small.tif"
    written = [p for p in tmp_path.iterdir() if p.is_file()]
    assert len(written) >= 4 and not [p for p in written if TOKEN.encode() in p.read_bytes()]
    assert TOKEN not in text
    code, text = _predict(folder, url, tmp_path / "remote.tif", capsys)  # finished earlier: same key, no token
    assert code == 0 and "finished earlier" in text, text


def test_a_corner_of_a_4096_cog_reads_a_small_fraction_of_it(served, tmp_path, capsys):
    folder, server = served
    size = (folder / "big.tif").stat().st_size
    corner = tmp_path / "corner.vrt"
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">/vsicurl/{server.url}/big.tif</SourceFilename><SourceBand>{b}</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{CORNER}" ySize="{CORNER}"/>'
        f'<DstRect xOff="0" yOff="0" xSize="{CORNER}" ySize="{CORNER}"/></SimpleSource></VRTRasterBand>'
        for b in (1, 2, 3))
    with rasterio.open(folder / "big.tif") as ds:
        srs, gt = ds.crs.to_wkt(), ", ".join(str(v) for v in ds.transform.to_gdal())
        expected = ds.read(window=((0, CORNER), (0, CORNER)))
    corner.write_text(f'<VRTDataset rasterXSize="{CORNER}" rasterYSize="{CORNER}"><SRS>{srs}</SRS>'
                      f'<GeoTransform>{gt}</GeoTransform>{bands}</VRTDataset>')
    server.reset()
    code, text = _predict(folder, str(corner), tmp_path / "corner_mask.tif", capsys)
    assert code == 0, text
    with rasterio.open(corner) as ds:
        assert (ds.read() == expected).all()
    with rasterio.open(tmp_path / "corner_mask.tif") as ds:
        assert ds.shape == (CORNER, CORNER) and ds.read(1).max() < 4
    said = int(re.search(r", (\d+) bytes read over the network", text)[1])
    print(f"read {server.bytes_sent} of {size} bytes ({100 * server.bytes_sent / size:.2f} %) "
          f"in {len(server.requests)} requests; rsseg said {said}")
    assert 0 < server.bytes_sent < size / 20
    assert abs(said - server.bytes_sent) <= 0.03 * server.bytes_sent, (said, server.bytes_sent)
    record = json.loads((tmp_path / "corner_mask.json").read_text())
    assert record["network_bytes"] == said


def test_the_bytes_read_and_their_share_of_a_remote_file_are_said(served, tmp_path, capsys):
    folder, server = served
    size = (folder / "small.tif").stat().st_size
    server.reset()
    code, text = _predict(folder, f"{server.url}/small.tif", tmp_path / "mask.tif", capsys)
    assert code == 0, text
    said, share, total = re.search(r", (\d+) bytes read over the network \(([\d.]+) % of (\d+)\)", text).groups()
    assert int(total) == size and abs(int(said) - server.range_bytes_sent) <= 0.03 * server.range_bytes_sent, text
    assert float(share) == pytest.approx(100 * int(said) / size, abs=0.01)
    record = json.loads((tmp_path / "mask.json").read_text())
    assert (record["network_bytes"], record["scene_bytes"]) == (int(said), size)
    code, text = _predict(folder, str(folder / "small.tif"), tmp_path / "local.tif", capsys)
    assert code == 0 and "over the network" not in text, text


@pytest.mark.parametrize("where, says", [
    ("/range/missing.tif", "not found on the server (HTTP 404)"),
    ("/private/small.tif?token=wrong", "access refused (HTTP 403)"),
    ("/norange/big.tif", "does not support range requests: reading it would download the whole file "
                         "(use --download-whole to allow it)"),
    ("/truncated/small.tif", "truncated response"),
    ("unreachable", "host unreachable"),
])
def test_network_errors_are_one_line_and_create_nothing(served, tmp_path, capsys, where, says):
    folder, server = served
    url = "http://127.0.0.1:1/small.tif" if where == "unreachable" else server.url + where
    code, text = _predict(folder, url, tmp_path / "mask.tif", capsys)
    assert code == 1 and text.count("\n") == 1 and says in text and "Traceback" not in text, text
    assert text.startswith(f"Error: {url.split('?')[0]}: ") and "wrong" not in text
    assert not list(tmp_path.iterdir())


def test_download_whole_only_with_the_flag(served, tmp_path, capsys):
    folder, server = served
    url = f"{server.url}/norange/whole.tif"
    code, text = _predict(folder, url, tmp_path / "mask.tif", capsys)
    assert code == 1 and "--download-whole" in text and not list(tmp_path.iterdir()), text
    server.reset()
    code, text = _predict(folder, url, tmp_path / "mask.tif", capsys, "--download-whole")
    size = (folder / "whole.tif").stat().st_size
    assert code == 0 and f"downloaded the whole file ({size} bytes)" in text, text
    assert server.bytes_sent >= size
    with rasterio.open(tmp_path / "mask.tif") as ds:
        assert ds.shape == (512, 512)


def test_urls_are_shown_without_tokens_or_credentials():
    assert public_url("https://user:pw@host/a/b.tif?X-Amz-Signature=abc#f") == "https://host/a/b.tif"
    scene = remote_scene("s3://bucket/key/scene.tif?versionId=1")
    assert (scene.gdal_path, str(scene), scene.stem) == ("/vsis3/bucket/key/scene.tif?versionId=1",
                                                         "s3://bucket/key/scene.tif", "scene")
    assert str(remote_scene("/vsicurl/https://h/x.tif?sig=1")) == "https://h/x.tif"


def _item(folder, assets: dict) -> str:
    """A STAC Item next to the served files, its assets relative hrefs with roles."""
    item = {"type": "Feature", "stac_version": "1.1.0", "id": "small", "geometry": None, "properties":
            {"datetime": "2026-01-01T00:00:00Z"}, "links": [],
            "assets": {name: {"href": href, "roles": roles} for name, (href, roles) in assets.items()}}
    (folder / "small_item.json").write_text(json.dumps(item))
    return "small_item.json"


def test_a_stac_item_is_a_scene_by_role_or_by_asset_name(served, tmp_path, capsys):
    folder, server = served
    name = _item(folder, {"thumbnail": ("big.tif", ["thumbnail"]), "image": ("small.tif", ["data"])})
    code, text = _predict(folder, str(folder / "small.tif"), tmp_path / "local.tif", capsys)
    assert code == 0, text
    for scene, extra in ((f"{server.url}/{name}", ()), (str(folder / name), ("--asset", "image"))):
        server.reset()
        code, text = _predict(folder, scene, tmp_path / "item.tif", capsys, "--overwrite", *extra)
        assert code == 0, text
        with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "item.tif") as b:
            assert (a.read() == b.read()).all()
        assert ("/small.tif" in " ".join(server.requests)) == scene.startswith("http")
    code, text = _predict(folder, str(folder / name), tmp_path / "x.tif", capsys, "--asset", "nir")
    assert code == 1 and text == f"Error: {folder / name}: no asset 'nir' (--asset; the Item has thumbnail, image)\n"


# -- a rerun after a kill resumes only from the same version of the remote file ------------------------------

TESTS = Path(__file__).parent
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}


def _slow(folder, scene: str, out: Path) -> list[str]:
    """``predict`` arguments with a slow PyTorch model: a band of rows takes about a second."""
    return ["predict", scene, "-o", str(out), "--checkpoint", str(folder / "slow.pt"), "--runtime", "torch",
            "--tile", "64", "--batch-size", "1", "--threads", "1", "--quiet"]


def _killed_half_way(folder, url: str, out: Path) -> None:
    """Start ``rsseg predict URL`` (a slow model) in a child and SIGKILL it once its first band is journaled."""
    proc = subprocess.Popen([sys.executable, str(TESTS / "rsseg_with_test_models.py"), *_slow(folder, url, out)],
                            env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = out.with_name(f".{out.name}.partial")
    deadline = time.monotonic() + 240
    while not list(partial.glob("rows-*.npz")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never finished a band"
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=60)
    assert not out.exists()


@pytest.mark.parametrize("changed", [False, True])
def test_a_rerun_resumes_only_from_the_same_version_of_the_remote_file(served, tmp_path, capsys, changed):
    folder, server = served
    model = SlowFCN(4)
    model.arch = {"name": "test_slow_fcn", "num_classes": 4, "in_channels": 3, "kwargs": {}}
    save_checkpoint(model, folder / "slow.pt", tile_size=64)
    scene = folder / f"versions_{changed}.tif"
    write_scene(scene, random_scene(1100, 64, seed=5), driver="COG")
    url, out = f"{server.url}/{scene.name}", tmp_path / "mask.tif"
    _killed_half_way(folder, url, out)
    if changed:
        write_scene(scene, random_scene(1100, 64, seed=6), driver="COG")
    code, text = run_cli(_slow(folder, url, out), capsys)
    assert code == 0, text
    warnings = [line for line in text.splitlines() if "changed on the server" in line]
    if changed:
        assert warnings == [f"Warning: {url}: the file changed on the server since the interrupted run "
                            "(etag, last-modified, size); its finished rows are recomputed"], text
        assert "resumed at row" not in text
    else:
        assert not warnings and "resumed at row 512" in text, text
    code, text = run_cli(_slow(folder, str(scene), tmp_path / "fresh.tif"), capsys)
    assert code == 0, text
    with rasterio.open(out) as a, rasterio.open(tmp_path / "fresh.tif") as b:
        assert (a.read() == b.read()).all()
