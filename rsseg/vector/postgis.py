"""Polygons into PostGIS: ``postgresql://user@host/db?table=NAME`` as a vector output, whole or absent.

The layer is written (GeoPandas ``to_postgis``, SQLAlchemy + GeoAlchemy2 + psycopg2) into a
temporary table, then renamed to ``NAME`` (or appended to it) in the same transaction, under a
lock per table: a killed run leaves nothing, concurrent writers to one table take turns. The
QGIS style goes into the database's ``layer_styles`` table. Credentials come from the URL,
``PGPASSWORD`` or ``~/.pgpass`` (libpq) and are never shown.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from rsseg.errors import RssegError

SCHEMES = ("postgresql://", "postgres://")
STYLE_NAME = "rsseg classes"
LAYER_STYLES = (
    "CREATE TABLE IF NOT EXISTS public.layer_styles (id SERIAL PRIMARY KEY, f_table_catalog VARCHAR, "
    "f_table_schema VARCHAR, f_table_name VARCHAR, f_geometry_column VARCHAR, stylename TEXT, styleqml XML, "
    "stylesld XML, useasdefault BOOLEAN, description TEXT, owner VARCHAR(63) DEFAULT CURRENT_USER, ui XML, "
    "update_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP, type VARCHAR)")  # as QGIS creates it


@dataclass(frozen=True)
class PostgisTarget:
    """A table to write: ``url`` connects (credentials included), ``shown`` names it without them."""

    url: str
    schema: str
    table: str
    shown: str


def is_postgis(target: str | os.PathLike) -> bool:
    """Whether an output names a PostGIS table."""
    return isinstance(target, str) and target.startswith(SCHEMES)


def parse_target(text: str) -> PostgisTarget:
    """``postgresql://[user[:password]@]host[:port]/db?table=[schema.]name``."""
    parts = urlsplit(text)
    query = parse_qs(parts.query)
    netloc = parts.netloc.rsplit("@", 1)
    host = netloc[-1]
    user = netloc[0].split(":", 1)[0] + "@" if len(netloc) == 2 else ""
    shown = urlunsplit(("postgresql", user + host, parts.path, "", ""))
    names = query.get("table", [""])[0].split(".")
    if not names[-1] or len(names) > 2 or not parts.path.strip("/"):
        raise RssegError(f"{shown}: give the database and the table: postgresql://user@host/DB?table=[SCHEMA.]NAME")
    schema, table = (names[0], names[1]) if len(names) == 2 else ("public", names[0])
    url = urlunsplit(("postgresql+psycopg2", parts.netloc, parts.path, "", ""))
    return PostgisTarget(url, schema, table, f"{shown}?table={schema}.{table}")


def _engine(target: PostgisTarget):
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(target.url, pool_pre_ping=False)
    try:
        with engine.connect() as con:
            if con.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first() is None:
                raise RssegError(f"{target.shown}: the database has no PostGIS extension (CREATE EXTENSION postgis)")
    except SQLAlchemyError as err:
        engine.dispose()
        raise RssegError(f"{target.shown}: cannot connect ({_first_line(err)})") from None
    return engine


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def table_exists(target: PostgisTarget) -> bool:
    """Whether the target table exists (connecting, with one-line errors)."""
    from sqlalchemy import inspect

    engine = _engine(target)
    try:
        return inspect(engine).has_table(target.table, schema=target.schema)
    finally:
        engine.dispose()


def check_target(target: PostgisTarget, overwrite: bool, append: bool) -> None:
    """Connect and refuse an existing table unless ``overwrite`` or ``append``, before any work."""
    if not (overwrite or append) and table_exists(target):
        raise RssegError(f"{target.shown}: table exists (use `overwrite` to replace it)")


def write_table(gpkg: Path, layer: str, target: PostgisTarget, *, overwrite: bool, append: bool,
                qml: str | None) -> None:
    """Copy ``layer`` of ``gpkg`` into the target table in one transaction (see the module)."""
    import geopandas as gpd
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    frame = gpd.read_file(gpkg, layer=layer).rename_geometry("geom")
    tmp = f"{target.table[:30]}_rsseg_{os.getpid()}_{secrets.token_hex(4)}"
    engine = _engine(target)
    try:
        with engine.begin() as con:
            frame.to_postgis(tmp, con, schema=target.schema, index=False)
            con.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                        {"name": f"{target.schema}.{target.table}"})
            exists = inspect(con).has_table(target.table, schema=target.schema)
            name, tmp_name = _quoted(target.schema, target.table), _quoted(target.schema, tmp)
            if exists and append:
                _require_same_columns(con, target, tmp)
                columns = ", ".join(f'"{c}"' for c in frame.columns)
                con.execute(text(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {tmp_name}"))
                con.execute(text(f"DROP TABLE {tmp_name}"))
            else:
                if exists and not overwrite:
                    raise RssegError(f"{target.shown}: table exists (use `overwrite` to replace it)")
                con.execute(text(f"DROP TABLE IF EXISTS {name}"))
                con.execute(text(f'ALTER TABLE {tmp_name} RENAME TO "{target.table}"'))
                con.execute(text(f'ALTER INDEX IF EXISTS "{target.schema}"."idx_{tmp}_geom" '
                                 f'RENAME TO "idx_{target.table}_geom"'))
            if qml is not None:
                _store_style(con, target, qml)
    except SQLAlchemyError as err:
        raise RssegError(f"{target.shown}: {_first_line(err)}") from None
    finally:
        engine.dispose()


def _quoted(schema: str, table: str) -> str:
    return f'"{schema}"."{table}"'


def _require_same_columns(con, target: PostgisTarget, tmp: str) -> None:
    from sqlalchemy import inspect

    def columns(table: str) -> dict[str, str]:
        return {c["name"]: str(c["type"]) for c in inspect(con).get_columns(table, schema=target.schema)}

    have, new = columns(target.table), columns(tmp)
    if have != new:
        raise RssegError(f"{target.shown}: cannot append, the table's columns differ "
                         f"(table: {', '.join(f'{k} {v}' for k, v in have.items())}; "
                         f"polygons: {', '.join(f'{k} {v}' for k, v in new.items())})")


def _store_style(con, target: PostgisTarget, qml: str) -> None:
    """Make ``qml`` the default QGIS style of the table in ``public.layer_styles``."""
    from sqlalchemy import text

    con.execute(text(LAYER_STYLES))
    keys = {"schema": target.schema, "table": target.table, "style": STYLE_NAME}
    con.execute(text("DELETE FROM public.layer_styles WHERE f_table_schema = :schema AND f_table_name = :table "
                     "AND stylename = :style"), keys)
    con.execute(text("UPDATE public.layer_styles SET useasdefault = false WHERE f_table_schema = :schema "
                     "AND f_table_name = :table"), keys)
    con.execute(text("INSERT INTO public.layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                     "f_geometry_column, stylename, styleqml, stylesld, useasdefault, description, type) "
                     "VALUES (current_database(), :schema, :table, 'geom', :style, XMLPARSE(DOCUMENT :qml), "
                     "NULL, true, 'rsseg classes', 'Polygon')"), {**keys, "qml": qml})


def vectorize_to_postgis(mask_path: str | os.PathLike, target: str, *, layer_per_class: bool = False,
                         overwrite: bool = False, append: bool = False, **options: Any) -> Any:
    """:func:`rsseg.vector.vectorize_mask` into a PostGIS table: a temporary GeoPackage, then copied."""
    import dataclasses
    import sqlite3
    import tempfile

    from rsseg.vector.vectorize import vectorize_mask

    where = parse_target(target)
    if layer_per_class:
        raise RssegError(f"{where.shown}: a table holds one layer (no `layer_per_class`)")
    if overwrite and append:
        raise RssegError(f"{where.shown}: give `overwrite` or `append`, not both")
    check_target(where, overwrite, append)
    with tempfile.TemporaryDirectory(prefix=f"rsseg-postgis-{os.getpid()}-") as folder:  # a killed run's stays
        gpkg = Path(folder) / f"{where.table}.gpkg"
        summary = vectorize_mask(mask_path, gpkg, **options)
        with sqlite3.connect(gpkg) as db:
            styles = db.execute("SELECT name FROM sqlite_master WHERE name = 'layer_styles'").fetchall()
            row = db.execute('SELECT "styleQML" FROM layer_styles LIMIT 1').fetchone() if styles else None
        write_table(gpkg, where.table, where, overwrite=overwrite, append=append, qml=row[0] if row else None)
    return dataclasses.replace(summary, path=where.shown)
