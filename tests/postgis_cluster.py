"""A throwaway PostgreSQL + PostGIS cluster for tests: initdb and pg_ctl under a temporary folder.

As root, the server runs as the ``postgres`` user (PostgreSQL refuses root). Two databases:
``gis`` with the PostGIS extension and ``plain`` without it. The user ``rsseg`` has a password.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "rsseg", "pw-for-tests"


@dataclass
class Cluster:
    folder: Path
    port: int
    prefix: list[str]

    def url(self, database: str = "gis", password: str | None = PASSWORD) -> str:
        """Its URL; without ``password`` libpq takes it from ``PGPASSWORD`` or ``~/.pgpass``."""
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def psql(self, database: str, sql: str) -> str:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        return subprocess.run([*self.prefix, self._bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
                               "-d", database, "-tAc", sql], check=True, capture_output=True, text=True,
                              env=env).stdout.strip()

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        subprocess.run([*self.prefix, self._bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def _bin(name: str) -> str:
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        return found[-1] if found else shutil.which(name) or name


def why_not() -> str | None:
    """Why no cluster can be started here (``None``: one can)."""
    if not (sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or shutil.which("initdb")):
        return "PostgreSQL is not installed (apt-get install postgresql postgresql-15-postgis-3)"
    if not glob.glob("/usr/share/postgresql/*/extension/postgis.control"):
        return "PostGIS is not installed (apt-get install postgresql-15-postgis-3)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start PostgreSQL as another user"
    try:
        import geoalchemy2  # noqa: F401
        import psycopg2  # noqa: F401
    except ImportError as err:
        return f"{err.name} is not installed (pip install -e '.[test]')"
    return None


def start() -> Cluster:
    """initdb in a new folder of the system's temporary folder (pytest's is private to its user), start
    on a free port of 127.0.0.1, create the two databases."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="rsseg-test-cluster-"))
    (folder / "pw").write_text(PASSWORD)
    if prefix:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = Cluster(folder, port, prefix)
    run = {"check": True, "capture_output": True}
    subprocess.run([*prefix, cluster._bin("initdb"), "-D", str(folder / "data"), "-U", USER, "--pwfile",
                    str(folder / "pw"), "--auth", "scram-sha-256", "-E", "UTF8"], **run)
    subprocess.run([*prefix, cluster._bin("pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w",
                    "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], **run)
    cluster.psql("postgres", "CREATE DATABASE gis")
    cluster.psql("postgres", "CREATE DATABASE plain")
    cluster.psql("gis", "CREATE EXTENSION postgis")
    return cluster
