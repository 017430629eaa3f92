"""The CPU paths: a CLI that starts without torch, INT8 exports, the lean ONNX Runtime session, overlapped I/O."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import write_scene

from rsseg.cli import COMMANDS

LIGHT = [["--help"]] + [[name, "--help"] for name in sorted(set(COMMANDS) - {"prepare"})] + [
    ["prepare", "generic", "--help"]]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def _without_torch(calls: list[list[str]]) -> subprocess.CompletedProcess:
    """Run ``rsseg`` with each argument list in one fresh interpreter; print whether torch got imported."""
    return _python("import sys\nfrom rsseg.cli import main\n"
                   f"for args in {calls!r}:\n"
                   "    try:\n        main(args)\n    except SystemExit as stop:\n"
                   "        assert not stop.code, (args, stop.code)\n"
                   "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n")


def test_help_of_the_cli_and_every_command_imports_no_torch():
    run = _without_torch(LIGHT)
    assert run.returncode == 0, run.stderr
    assert "torch imported: False" in run.stderr
    assert all(f"Usage: rsseg {name}" in run.stdout for name in COMMANDS)


@pytest.mark.xfail(strict=True, reason="rsseg.data.patches imports torch at the top; the dataset registry, which "
                                       "`rsseg prepare --help` lists, imports it")
def test_help_of_prepare_imports_no_torch():
    run = _without_torch([["prepare", "--help"]])
    assert "torch imported: False" in run.stderr


def test_vectorize_imports_no_torch(tmp_path):
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 10:30, 10:40] = 1
    path = write_scene(tmp_path / "mask.tif", mask, nodata=255)
    out = tmp_path / "polygons.gpkg"
    run = _without_torch([["vectorize", str(path), "-o", str(out), "--quiet"]])
    assert run.returncode == 0, run.stderr
    assert "torch imported: False" in run.stderr
    assert out.is_file() and "polygon" in run.stdout


def test_models_lists_without_building_and_profiles_on_request():
    listed = subprocess.run([sys.executable, "-m", "rsseg.cli", "models", "--markdown"], capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "| name | paper | default backbone |" and any(line.startswith("| manet |") for line in lines)
    refused = subprocess.run([sys.executable, "-m", "rsseg.cli", "models", "--size", "64"], capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2
    assert refused.stderr.strip() == "Error: --size applies to --profile only"
