"""Scenes in object storage: ``s3://`` through GDAL's /vsis3/ against a local S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket

import pytest
import rasterio
from conftest import random_scene, run_cli, save_tiny_model, write_scene

boto3 = pytest.importorskip("boto3", reason="boto3 is in the `test` extra (pip install -e .[test])")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the `test` extra")

SECRETS = {"AWS_ACCESS_KEY_ID": "AKIDRSSEGTEST0001", "AWS_SECRET_ACCESS_KEY": "rsseg-secret-access-key",
           "AWS_SESSION_TOKEN": "rsseg-session-token"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """A model file and a COG, the COG also as ``s3://scenes/area/scene.tif`` on a local S3 server; the folder."""
    folder = tmp_path_factory.mktemp("s3")
    save_tiny_model(folder / "tiny.pt")
    write_scene(folder / "scene.tif", random_scene(128, 160, seed=4), driver="COG")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on stderr
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as env:
        for name, value in {**SECRETS, "AWS_REGION": "us-east-1", "AWS_S3_ENDPOINT": f"127.0.0.1:{port}",
                            "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}.items():
            env.setenv(name, value)
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        client.create_bucket(Bucket="scenes")
        client.upload_file(str(folder / "scene.tif"), "scenes", "area/scene.tif")
        yield folder
    server.stop()


def _predict(folder, scene: str, capsys, *outputs: str) -> tuple[int, str]:
    return run_cli(["predict", scene, *outputs, "--checkpoint", str(folder / "tiny.pt"), "--tile", "64",
                    "--threads", "1", "--quiet"], capsys)


def test_an_s3_scene_equals_the_local_file_and_no_credential_is_written(bucket, tmp_path, capsys):
    code, text = _predict(bucket, str(bucket / "scene.tif"), capsys, "-o", str(tmp_path / "local.tif"))
    assert code == 0, text
    out = tmp_path / "catalogue"
    code, text = _predict(bucket, "s3://scenes/area/scene.tif", capsys, "--out-dir", str(out), "--vector")
    assert code == 0, text
    assert "bytes read over the network" in text, text
    mask = out / "scene_mask.tif"
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(mask) as b:
        assert (a.read() == b.read()).all() and a.transform == b.transform
    record = json.loads(mask.with_suffix(".json").read_text())
    assert record["scene"] == "s3://scenes/area/scene.tif" and record["network_bytes"] > 0
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".json") and "stac_version" in p.read_text() for p in written)
    for secret in SECRETS.values():
        assert secret not in text
        assert not [p for p in written if secret.encode() in p.read_bytes()], secret


@pytest.mark.parametrize("url, says", [
    ("s3://scenes/area/missing.tif", "The specified key does not exist."),
    ("s3://no-such-bucket/scene.tif", "The specified bucket does not exist"),
])
def test_a_missing_key_or_bucket_is_one_line_and_creates_nothing(bucket, tmp_path, capsys, url, says):
    code, text = _predict(bucket, url, capsys, "-o", str(tmp_path / "mask.tif"))
    assert code == 1 and text == f"Error: {url}: {says}\n", text
    assert not list(tmp_path.iterdir())
    assert not [secret for secret in SECRETS.values() if secret in text]
