"""A local HTTP server for remote-scene tests: serves a folder with Range requests and counts the bytes sent.

Modes per path prefix: ``/norange/NAME`` ignores Range (whole file, 200); ``/truncated/NAME`` announces
the full length but stops half-way; ``/private/NAME?token=SECRET`` needs the token. Every file
has an ETag and a Last-Modified from its size and modification time. GDAL stats a file with a GET
and hangs up after the headers; the whole answer still counts in ``bytes_sent`` (the socket takes
it), not in ``range_bytes_sent``.
"""

from __future__ import annotations

import re
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

TOKEN = "s3cr3t-t0ken"


class RangeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.folder = folder
        self.bytes_sent = 0
        self.range_bytes_sent = 0  # in answers to range requests: what a client reads in full
        self.requests: list[str] = []
        self.lock = threading.Lock()

    def handle_error(self, request, client_address) -> None:  # a client that hangs up is part of the tests
        pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reset(self) -> None:
        with self.lock:
            self.bytes_sent, self.range_bytes_sent, self.requests = 0, 0, []


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        parts = urlsplit(self.path)
        mode, _, name = parts.path.lstrip("/").partition("/")
        if mode not in ("range", "norange", "truncated", "private"):
            mode, name = "range", parts.path.lstrip("/")
        with self.server.lock:
            self.server.requests.append(self.path)
        path = self.server.folder / name
        if mode == "private" and parse_qs(parts.query).get("token") != [TOKEN]:
            return self._status(403)
        if not name or not path.is_file():
            return self._status(404)
        data, stat = path.read_bytes(), path.stat()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match and mode != "norange":
            start = int(match[1])
            end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
            chunk = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            chunk = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("ETag", f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"')
        self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
        if mode != "norange":
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if body:
            sent = chunk[:len(chunk) // 2] if mode == "truncated" else chunk
            self.wfile.write(sent)
            with self.server.lock:
                self.server.bytes_sent += len(sent)
                self.server.range_bytes_sent += len(sent) if match and mode != "norange" else 0
            if mode == "truncated":
                self.close_connection = True

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


def start(folder: Path) -> RangeServer:
    """Serve ``folder`` on 127.0.0.1 (a free port) from a daemon thread."""
    server = RangeServer(folder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
