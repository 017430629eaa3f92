"""Polygons into a real PostGIS, started by the test (initdb + pg_ctl under a temporary folder)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import pytest
import shapely
from postgis_cluster import PASSWORD, start, why_not
from test_vectorize import blob_mask, write_mask

pytestmark = pytest.mark.skipif(why_not() is not None, reason=f"no PostGIS server: {why_not()}")


@pytest.fixture(scope="module")
def db():
    cluster = start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def mask(tmp_path_factory):
    return write_mask(tmp_path_factory.mktemp("mask") / "mask.tif", blob_mask(4))


@pytest.fixture
def vectorize(capsys, monkeypatch):
    """``rsseg vectorize ARGS --quiet`` in this process, with ``env`` set: exit code, stdout, stderr."""
    from rsseg.cli import main

    def run(*args: str, env: dict | None = None) -> SimpleNamespace:
        with monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            try:
                main(["vectorize", *args, "--quiet"])
                code = 0
            except SystemExit as exc:
                code = exc.code or 0
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def _tables(db) -> list[str]:
    return db.psql("gis", "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()


def test_round_trip_equals_the_geopackage_with_srid_index_and_style(db, mask, tmp_path, vectorize):
    gpkg = tmp_path / "polygons.gpkg"
    assert vectorize(str(mask), "-o", str(gpkg)).returncode == 0
    done = vectorize(str(mask), "-o", db.url(password=None) + "?table=blobs", env={"PGPASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    assert "-> postgresql://rsseg@127.0.0.1" in done.stdout and PASSWORD not in done.stdout + done.stderr
    expected = gpd.read_file(gpkg, layer="polygons")
    got = gpd.read_postgis("SELECT * FROM blobs", db.url().replace("postgresql", "postgresql+psycopg2"),
                           geom_col="geom")
    assert got.crs == expected.crs and len(got) == len(expected) > 50
    key = ["class_id", "area_m2"]
    expected = expected.sort_values(key, ignore_index=True)
    got = got.sort_values(key, ignore_index=True)
    assert list(got["class_name"]) == list(expected["class_name"])
    assert all(shapely.equals(a, b) for a, b in zip(got.geometry, expected.geometry))
    assert db.psql("gis", "SELECT Find_SRID('public', 'blobs', 'geom')") == "32632"
    assert "USING gist" in db.psql("gis", "SELECT indexdef FROM pg_indexes WHERE tablename = 'blobs'")
    style = db.psql("gis", "SELECT useasdefault, f_geometry_column FROM layer_styles WHERE f_table_name = 'blobs'")
    assert style == "t|geom"
    assert [t for t in _tables(db) if "rsseg" in t] == []


def test_existing_table_refused_overwritten_or_appended_when_columns_match(db, mask, tmp_path, vectorize):
    url = db.url() + "?table=again"
    assert vectorize(str(mask), "-o", url).returncode == 0
    count = int(db.psql("gis", "SELECT count(*) FROM again"))
    refused = vectorize(str(mask), "-o", url)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "--overwrite" in refused.stderr
    assert vectorize(str(mask), "-o", url, "--overwrite").returncode == 0
    assert int(db.psql("gis", "SELECT count(*) FROM again")) == count
    assert vectorize(str(mask), "-o", url, "--append").returncode == 0
    assert int(db.psql("gis", "SELECT count(*) FROM again")) == 2 * count
    probs = tmp_path / "probs.tif"  # a mean_prob column: another schema
    import numpy as np
    import rasterio

    with rasterio.open(mask) as src:
        profile = {**src.profile, "count": 4, "nodata": None}
        with rasterio.open(probs, "w", **profile) as dst:
            dst.write(np.full((4, src.height, src.width), 64, np.uint8))
    other = vectorize(str(mask), "-o", url, "--append", "--probs", str(probs))
    assert other.returncode == 1 and other.stderr.count("\n") == 1 and "columns differ" in other.stderr
    assert int(db.psql("gis", "SELECT count(*) FROM again")) == 2 * count


def test_kill_9_during_the_write_leaves_no_table(db, mask):
    """The writer waits on the table's lock with its temporary table written; killed there, nothing stays."""
    holder = subprocess.Popen([*db.prefix, db._bin("psql"), "-h", "127.0.0.1", "-p", str(db.port), "-U", "rsseg",
                               "-d", "gis", "-c", "SELECT pg_advisory_lock(hashtext('public.killed'))",
                               "-c", "SELECT pg_sleep(60)"], env={**os.environ, "PGPASSWORD": PASSWORD},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: db.psql("gis", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") == "1")
        writer = subprocess.Popen([sys.executable, "-m", "rsseg.cli", "vectorize", str(mask), "-o",
                                   db.url() + "?table=killed", "--quiet"])
        _wait(lambda: db.psql("gis", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                     "AND NOT granted") == "1")
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    finally:  # end the holder's session: the killed writer's transaction gets the lock and finds its client gone
        db.psql("gis", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)'")
        holder.wait()
    _wait(lambda: db.psql("gis", "SELECT count(*) FROM pg_stat_activity "
                                 "WHERE query LIKE 'SELECT pg_advisory_xact_lock%'") == "0")
    assert [t for t in _tables(db) if t.startswith("killed")] == []
    for left in Path(tempfile.gettempdir()).glob(f"rsseg-postgis-{writer.pid}-*"):  # its temporary GeoPackage
        shutil.rmtree(left)


def test_concurrent_writers_to_one_table_take_turns(db, mask, vectorize):
    url = db.url() + "?table=shared"
    assert vectorize(str(mask), "-o", url).returncode == 0
    count = int(db.psql("gis", "SELECT count(*) FROM shared"))
    writers = [subprocess.Popen([sys.executable, "-m", "rsseg.cli", "vectorize", str(mask), "-o", url, "--append",
                                 "--quiet"], stderr=subprocess.PIPE) for _ in range(3)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    assert int(db.psql("gis", "SELECT count(*) FROM shared")) == 4 * count
    assert [t for t in _tables(db) if t.startswith("shared_rsseg")] == []


def test_password_from_pgpass(db, mask, tmp_path, vectorize):
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{db.port}:gis:rsseg:{PASSWORD}\n")
    pgpass.chmod(0o600)
    done = vectorize(str(mask), "-o", db.url(password=None) + "?table=from_pgpass",
                      env={"PGPASSFILE": str(pgpass), "PGPASSWORD": ""})
    assert done.returncode == 0, done.stderr
    assert int(db.psql("gis", "SELECT count(*) FROM from_pgpass")) > 0


@pytest.mark.parametrize("case", ["password", "postgis"])
def test_wrong_credentials_and_missing_postgis_are_one_line(db, mask, case, vectorize):
    url = db.url(password="wrong-pw") if case == "password" else db.url("plain")
    done = vectorize(str(mask), "-o", url + "?table=nope")
    says = "password authentication failed" if case == "password" else "no PostGIS extension"
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert "wrong-pw" not in done.stderr and PASSWORD not in done.stderr and "Traceback" not in done.stderr


def _wait(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_predict_vector_into_postgis_and_a_rerun_keeps_the_table(db, tmp_path, capsys, vectorize):
    from conftest import TinyFCN, random_scene, run_cli, write_scene

    from rsseg.models import save_checkpoint

    model = TinyFCN(4)
    model.arch = {"name": "test_tiny_fcn", "num_classes": 4, "in_channels": 3, "kwargs": {}}
    save_checkpoint(model, tmp_path / "tiny.pt", tile_size=64)
    scene = write_scene(tmp_path / "scene.tif", random_scene(96, 128, seed=5))
    args = ["predict", str(scene), "-o", str(tmp_path / "mask.tif"), "--checkpoint", str(tmp_path / "tiny.pt"),
            "--vector", db.url() + "?table=predicted", "--threads", "1", "--quiet"]
    code, text = run_cli(args, capsys)
    assert code == 0 and "-> postgresql://rsseg@" in text and PASSWORD not in text, text
    assert PASSWORD not in (tmp_path / "mask.json").read_text()
    assert vectorize(str(tmp_path / "mask.tif"), "-o", str(tmp_path / "p.gpkg")).returncode == 0
    count = len(gpd.read_file(tmp_path / "p.gpkg", layer="p"))
    assert int(db.psql("gis", "SELECT count(*) FROM predicted")) == count > 0
    code, text = run_cli(args, capsys)  # finished earlier: neither the mask nor the table is rewritten
    assert code == 0 and "finished earlier" in text, text
    code, text = run_cli([*args[:3], str(tmp_path / "other.tif"), *args[4:]], capsys)
    assert code == 1 and text.count("\n") == 1 and "table exists (use --overwrite" in text, text
