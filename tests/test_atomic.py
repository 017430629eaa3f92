"""rsseg.io.atomic: the real temporary path renamed, sidecars by literal prefix, locks and stale runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rsseg.errors import RssegError
from rsseg.io.atomic import TAG, OutputClaim, atomic_output


@pytest.mark.parametrize("name", ["plain.shp", "no_extension", "a[1]*?.shp", ".hidden"])
def test_output_and_sidecars_renamed_whatever_the_name(tmp_path, name):
    final = tmp_path / name
    with atomic_output(final) as tmp:
        tmp.write_text("main")
        tmp.with_name(tmp.name + ".aux.xml").write_text("aux")
        if tmp.suffix == ".shp":
            tmp.with_suffix(".dbf").write_text("dbf")
    assert final.read_text() == "main"
    assert (tmp_path / (name + ".aux.xml")).read_text() == "aux"
    if final.suffix == ".shp":
        assert final.with_suffix(".dbf").read_text() == "dbf"
    assert not [p for p in tmp_path.iterdir() if TAG in p.name]


def test_failure_removes_everything_and_keeps_the_old_output(tmp_path):
    final = tmp_path / "out.tif"
    final.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_output(final, overwrite=True) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert final.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_live_claim_refused_and_dead_claim_cleaned(tmp_path):
    final = tmp_path / "out.tif"
    holder = OutputClaim(final)
    holder.acquire()
    with pytest.raises(RssegError, match=f"pid {os.getpid()}"), atomic_output(final):
        pass
    holder.discard()
    # a run killed while writing: its lock is no longer held, its files are stale
    code = (f"import os; from pathlib import Path; from rsseg.io.atomic import OutputClaim; "
            f"c = OutputClaim(Path({str(final)!r})); c.acquire(); c.tmp.write_text('x'); os._exit(9)")
    subprocess.run([sys.executable, "-c", code], check=False)
    assert len([p for p in tmp_path.iterdir() if TAG in p.name]) == 2
    with atomic_output(final) as tmp:
        tmp.write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]
