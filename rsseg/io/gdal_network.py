"""What GDAL's network file systems know that rasterio does not expose: the bytes downloaded, and
the HTTP headers of a remote file. Read through ctypes on the libgdal that rasterio loaded; where
that library cannot be found (another platform, a GDAL before 3.2), both say nothing.

GDAL decides once, at its first network access, whether it keeps statistics: importing this
module turns them on, so it must come before any scene is opened (:mod:`rsseg.io.remote` imports it).
"""

from __future__ import annotations

import ctypes
import json
from functools import lru_cache


@lru_cache(maxsize=1)
def _libgdal() -> ctypes.CDLL | None:
    """The libgdal already mapped into this process by rasterio, or ``None``."""
    import rasterio  # noqa: F401  (loads libgdal)

    try:
        with open("/proc/self/maps") as maps:
            path = next((line.split()[-1] for line in maps if "libgdal" in line.rsplit("/", 1)[-1]), None)
        if path is None:
            return None
        lib = ctypes.CDLL(path)
        lib.VSINetworkStatsGetAsSerializedJSON.restype = ctypes.c_void_p
        lib.VSINetworkStatsGetAsSerializedJSON.argtypes = [ctypes.c_void_p]
        lib.VSIGetFileMetadata.restype = ctypes.POINTER(ctypes.c_char_p)
        lib.VSIGetFileMetadata.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
        lib.CPLSetConfigOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.VSIFree.argtypes = [ctypes.c_void_p]
        lib.CSLDestroy.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    lib.CPLSetConfigOption(b"CPL_VSIL_NETWORK_STATS_ENABLED", b"YES")
    return lib


def start_network_count() -> None:
    """Count, from now on, the bytes GDAL downloads (all its network file systems, this process)."""
    lib = _libgdal()
    if lib is not None:
        lib.VSINetworkStatsReset()


def network_bytes_read() -> int | None:
    """The bytes GDAL downloaded since :func:`start_network_count` (``None`` when unknown)."""
    lib = _libgdal()
    if lib is None:
        return None
    pointer = lib.VSINetworkStatsGetAsSerializedJSON(None)
    if not pointer:
        return None
    try:
        stats = json.loads(ctypes.string_at(pointer).decode())
    finally:
        lib.VSIFree(pointer)
    return sum(int(method.get("downloaded_bytes", 0)) for method in stats.get("methods", {}).values())


def http_headers(gdal_path: str) -> dict[str, str]:
    """The HTTP headers the server sends for ``gdal_path`` (a ``/vsicurl/``, ``/vsis3/``… path), lower-case
    names; empty when unknown."""
    lib = _libgdal()
    if lib is None:
        return {}
    listed = lib.VSIGetFileMetadata(gdal_path.encode(), b"HEADERS", None)  # a NULL-terminated "NAME=VALUE" list
    if not listed:
        return {}
    headers = {}
    i = 0
    while listed[i] is not None:
        name, _, value = listed[i].decode(errors="replace").partition("=")
        headers[name.strip().lower()] = value.strip()
        i += 1
    lib.CSLDestroy(ctypes.cast(listed, ctypes.c_void_p))
    return headers


_libgdal()  # statistics on before the first network access
