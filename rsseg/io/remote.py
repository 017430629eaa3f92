"""Scenes over HTTP(S) and in object storage, read by GDAL's network file systems window by window.

``https://…``, ``http://…``, ``s3://bucket/key`` and GDAL's own ``/vsicurl/…``, ``/vsis3/…``
name a remote scene. GDAL reads it with range requests, so a Cloud-Optimised GeoTIFF is never
downloaded whole. What rsseg shows and records is :attr:`RemoteScene.url`: no query string
(signed URLs carry their tokens there) and no ``user:password@``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import rasterio
from rasterio.errors import RasterioIOError

from rsseg.errors import RssegError, reason
from rsseg.io.gdal_network import http_headers

PREFIXES = {"http://": "/vsicurl/", "https://": "/vsicurl/", "s3://": "/vsis3/"}
GDAL_PREFIXES = ("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/")
NO_RANGES = ("the server does not support range requests: reading it would download the whole file "
             "(use `download_whole` to allow it)")
# no directory listing on open (one request instead of many), no retries that hide a dead server
NETWORK_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": "0",
               "CPL_VSIL_CURL_USE_HEAD": "NO", "GDAL_HTTP_TIMEOUT": "30"}


@dataclass(frozen=True)
class RemoteScene:
    """A scene GDAL reads over the network: ``gdal_path`` (tokens included) opens it, ``url`` names it;
    ``download_whole`` allows reading a file from a server without range requests (all of it)."""

    gdal_path: str
    url: str
    download_whole: bool = False

    @property
    def name(self) -> str:
        return PurePosixPath(urlsplit(self.url).path).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    def __str__(self) -> str:
        return self.url


Scene = Path | RemoteScene  # what the engine takes as a scene


def as_scene(arg: str | os.PathLike | RemoteScene, download_whole: bool = False) -> Scene:
    """A scene argument as a local :class:`Path` or a :class:`RemoteScene`."""
    if isinstance(arg, RemoteScene):
        return arg
    return remote_scene(os.fspath(arg), download_whole) if is_remote(arg) else Path(arg)


def scene_identity(scene: Scene) -> dict:
    """What identifies a scene's content in a resume key: a file's resolved path, size and mtime; a
    remote scene's public URL and what its server says identifies the version (size, ETag,
    Last-Modified), never credentials or tokens."""
    if isinstance(scene, RemoteScene):
        return {"scene": scene.url, **remote_version(scene)}
    stat = scene.stat()
    return {"scene": str(scene.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}


def remote_version(scene: RemoteScene) -> dict:
    """The size, ETag and Last-Modified the server gives for ``scene``, those it gives."""
    with rasterio.Env(**{**NETWORK_ENV, "CPL_VSIL_CURL_USE_HEAD": "YES"}):  # headers only, no data
        headers = http_headers(scene.gdal_path)
    total = headers.get("content-range", "").rpartition("/")[2]
    size = total if total.isdigit() else headers.get("content-length", "")
    version = {"size": int(size)} if size.isdigit() else {}
    return {**version, **{name.replace("-", "_"): headers[name].strip('"')
                          for name in ("etag", "last-modified") if headers.get(name)}}


def public_name(name: str) -> str:
    """A dataset name as shown: a network path without its tokens and credentials."""
    return str(remote_scene(name)) if is_remote(name) else name


def is_remote(arg: str | os.PathLike | RemoteScene) -> bool:
    """Whether ``arg`` names a remote scene."""
    if isinstance(arg, RemoteScene):
        return True
    return isinstance(arg, str) and arg.startswith((*PREFIXES, *GDAL_PREFIXES))


def remote_scene(arg: str, download_whole: bool = False) -> RemoteScene:
    """The :class:`RemoteScene` of a URL or GDAL network path."""
    for scheme, prefix in PREFIXES.items():
        if arg.startswith(scheme):
            return RemoteScene(prefix + (arg[len("s3://"):] if scheme == "s3://" else arg), public_url(arg),
                               download_whole)
    prefix = next(p for p in GDAL_PREFIXES if arg.startswith(p))
    rest = arg[len(prefix):]
    return RemoteScene(arg, public_url(rest) if "://" in rest else prefix + rest.split("?")[0], download_whole)


def public_url(url: str) -> str:
    """``url`` without its query string, fragment and credentials."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def open_remote(scene: RemoteScene) -> rasterio.DatasetReader:
    """Open a remote scene; an unreachable host, a refusal, a missing file or a server without range
    requests (unless ``download_whole``) raise :class:`RssegError` in one line."""
    try:
        with rasterio.Env(**NETWORK_ENV):
            return rasterio.open(scene.gdal_path)
    except RasterioIOError as err:
        why = network_reason(err)
        if not (scene.download_whole and why == NO_RANGES and scene.gdal_path.startswith("/vsicurl/http")):
            raise RssegError(f"{scene}: {why}") from None
    return _open_downloaded(scene)


def _open_downloaded(scene: RemoteScene) -> rasterio.DatasetReader:
    """Download the whole file into an unnamed temporary file (gone when closed) and open it."""
    import shutil
    import tempfile
    import urllib.request
    import warnings
    from http.client import HTTPException
    from urllib.error import URLError

    with tempfile.NamedTemporaryFile(suffix=Path(scene.name).suffix) as tmp:
        try:
            with urllib.request.urlopen(scene.gdal_path[len("/vsicurl/"):], timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except HTTPException:  # IncompleteRead: the server announced more than it sent
            raise RssegError(f"{scene}: truncated response from the server") from None
        except (URLError, OSError) as err:
            raise RssegError(f"{scene}: download failed ({getattr(err, 'reason', err)})") from None
        tmp.flush()
        warnings.warn(f"{scene}: the server does not support range requests; downloaded the whole file "
                      f"({tmp.tell()} bytes)", stacklevel=3)
        return rasterio.open(tmp.name)  # the open file outlives its name


def network_reason(err: BaseException) -> str:
    """What went wrong with a network read, in words (GDAL's message otherwise), tokens removed."""
    text = reason(err)
    lower = text.lower()
    for code, words in (("403", "access refused (HTTP 403)"), ("404", "not found on the server (HTTP 404)"),
                        ("401", "authentication needed (HTTP 401)")):
        if f"response code: {code}" in lower:
            return words
    if "range downloading not supported" in lower:
        return NO_RANGES
    if "could not connect" in lower or "couldn't connect" in lower or "could not resolve" in lower \
            or "couldn't resolve" in lower:
        return f"host unreachable ({text.split(':', 1)[-1].strip()})"
    if any(words in lower for words in ("outstanding read data", "transfer closed", "read failed", "partial file")) \
            or re.search(r"got \d+ bytes, expected \d+", lower):
        return "truncated response from the server (the connection closed before the data was complete)"
    return text.split("?")[0]
