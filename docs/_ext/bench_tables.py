"""``{bench-results} NAME``: the benchmark records of ``benchmarks/results/NAME-*.json`` as tables.

The records are written by ``scripts/bench_record.py``; each becomes a heading naming the
benchmark and the machine, one line saying where, when and how busy, then its tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def cell(value: Any) -> str:
    """A table cell: numbers as recorded, yes/no for booleans, a dash for missing values."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> nodes.table:
    """A docutils table with a caption, a header row and one row per recorded row."""
    group = nodes.tgroup(cols=len(columns))
    group += [nodes.colspec(colwidth=1) for _ in columns]

    def row(cells: list[Any]) -> nodes.row:
        line = nodes.row()
        for value in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=cell(value))
            line += entry
        return line

    group += nodes.thead("", row(columns))
    group += nodes.tbody("", *(row(r) for r in rows))
    return nodes.table("", nodes.title(text=title), group)


def about(record: dict[str, Any]) -> str:
    """One line: machine, date, commit, how busy, versions and where the figures come from."""
    machine, load = record["machine"], record["load"]
    where = f"{machine.get('cpu') or 'CPU model not recorded'}, {machine['cores']} cores, " \
            f"{machine.get('gpu') or 'no GPU'}"
    if machine.get("note"):
        where += f" ({machine['note']})"
    busy = "quiet" if load.get("quiet") else "NOT quiet: figures are indicative"
    for key, label in (("busy_before_pct", "others used {} % of the CPUs at the start"),
                       ("loadavg", "load average {}"), ("loadavg_before", "load average {} before"),
                       ("loadavg_after", "{} after"), ("note", "{}")):
        if load.get(key) is not None:
            busy += "; " + label.format(load[key])
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items() if v)
    parts = [where, f"date {record.get('date') or 'not recorded'}",
             f"commit {record.get('commit') or 'not recorded'}", busy, versions, record.get("source")]
    return ". ".join(p for p in parts if p) + "."


class BenchResults(Directive):
    """Render every record whose benchmark name is the argument or starts with it."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        files = sorted(RESULTS.glob(f"{self.arguments[0]}*.json"))
        if not files:
            raise self.error(f"no benchmark records {RESULTS.name}/{self.arguments[0]}*.json")
        out: list[nodes.Node] = []
        for path in files:
            env.note_dependency(str(path))
            record = json.loads(path.read_text())
            machine = path.stem.removeprefix(record["benchmark"] + "-")
            out.append(nodes.rubric(text=f"{record['benchmark']} — {machine}"))
            out.append(nodes.paragraph(text=about(record)))
            out.extend(table(t["title"], t["columns"], t["rows"]) for t in record["tables"])
            out.append(nodes.paragraph(text=f"Record: benchmarks/results/{path.name}"))
        return out


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("bench-results", BenchResults)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
