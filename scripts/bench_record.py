"""Benchmark results as data: one JSON record per benchmark and machine under ``benchmarks/results/``.

Every ``scripts/bench_*.py`` opens a record before it measures and saves it with its tables::

    record = bench_record.start("attention", settings=vars(args))
    ...
    record.table("Attention, C=64", ["attention", "32² ms"], rows)
    record.save()        # benchmarks/results/attention-<cpu>-<cores>c[-<gpu>].json

A record holds the machine (CPU model from ``/proc/cpuinfo``, cores, GPU or none), how busy it
was (the share of the CPUs other processes used in the second before the start, load averages
before and after), the versions (rsseg, torch, onnxruntime, python), the git commit, the date,
the settings and the figures. The documentation's benchmark page renders these files
(``docs/_ext/bench_tables.py``); the file name says which machine measured them, so records of
other machines sit beside each other.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QUIET_BUSY_PCT = 10  # the threshold of shared/tools/quiet-run: others below 10 % of all cores


def cpu_model() -> str:
    """The CPU model name of ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The first CUDA device's name, or None (torch not imported here unless the script did)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def machine_slug(cpu: str, cores: int, gpu: str | None) -> str:
    """A file-name fragment naming the machine, e.g. ``amd-epyc-9454-2c`` or ``intel-xeon-16c-nvidia-h100``."""
    def words(name: str, count: int) -> str:
        name = re.sub(r"\((r|tm)\)|@.*|\b\d+-core\b|\b(processor|cpu|with .*)\b", " ", name.lower())
        return "-".join(re.findall(r"[a-z0-9]+", name)[:count])

    return f"{words(cpu, 4)}-{cores}c" + (f"-{words(gpu, 2)}" if gpu else "")


def cpu_busy_pct(seconds: float = 1.0) -> float:
    """Percent of all cores busy over ``seconds`` (Linux ``/proc/stat``)."""
    def ticks() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    busy0, total0 = ticks()
    time.sleep(seconds)
    busy1, total1 = ticks()
    return round(100 * (busy1 - busy0) / max(total1 - total0, 1), 1)


def versions() -> dict[str, str | None]:
    """Installed versions of the packages a figure depends on, and Python's."""
    found: dict[str, str | None] = {}
    for package in ("rsseg", "torch", "onnxruntime"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["python"] = platform.python_version()
    return found


def git_commit() -> str | None:
    """The checkout's commit (with ``+dirty`` when it has uncommitted changes), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def dumps(data: dict[str, Any]) -> str:
    """JSON with one line per key and per table row, so that a rerun's diff shows what changed."""
    def one(value: Any) -> str:
        return json.dumps(value, default=str, ensure_ascii=False)

    lines = [f" {one(key)}: {one(value)}" for key, value in data.items() if key != "tables"]
    tables = [f'  {{"title": {one(t["title"])}, "columns": {one(t["columns"])}, "rows": [\n'
              + ",\n".join(f"   {one(row)}" for row in t["rows"]) + "]}" for t in data.get("tables", [])]
    lines.append(' "tables": [\n' + ",\n".join(tables) + "]")
    return "{\n" + ",\n".join(lines) + "\n}\n"


@dataclass
class Record:
    """One benchmark run: where, when and how busy, then its tables."""

    benchmark: str
    settings: dict[str, Any]
    load_before: list[float]
    busy_before_pct: float
    tables: list[dict[str, Any]] = field(default_factory=list)

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Add a table of figures (one list of cells per row, in the order of ``columns``) and print it."""
        self.tables.append({"title": title, "columns": columns, "rows": rows})
        print(f"\n{title}\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
        for row in rows:
            print("| " + " | ".join(str(cell) for cell in row) + " |")

    def save(self, out_dir: Path = RESULTS) -> Path:
        """Write ``out_dir/<benchmark>-<machine>.json`` (replacing that machine's previous record)."""
        cpu, cores, gpu = cpu_model(), os.cpu_count() or 1, gpu_name()
        data = {
            "benchmark": self.benchmark,
            "date": datetime.date.today().isoformat(),
            "commit": git_commit(),
            "machine": {"cpu": cpu, "cores": cores, "gpu": gpu},
            "load": {"busy_before_pct": self.busy_before_pct, "loadavg_before": self.load_before,
                     "loadavg_after": [round(v, 2) for v in os.getloadavg()],
                     "quiet": self.busy_before_pct < QUIET_BUSY_PCT},
            "versions": versions(),
            "settings": self.settings,
            "tables": self.tables,
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.benchmark}-{machine_slug(cpu, cores, gpu)}.json"
        path.write_text(dumps(data))
        print(f"recorded {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", file=sys.stderr)
        return path


def start(benchmark: str, settings: dict[str, Any]) -> Record:
    """Open a record before measuring: samples how busy the machine is now."""
    busy = cpu_busy_pct()
    return Record(benchmark, settings, [round(v, 2) for v in os.getloadavg()], busy)
