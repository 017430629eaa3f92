"""Sphinx configuration of the rsseg documentation (``make docs``; ``make test`` builds it with ``-W``)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent / "_ext")]

from rsseg import __version__  # noqa: E402

project = "rsseg"
author = "rsseg contributors"
release = version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_click",
    "bench_tables",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

autodoc_mock_imports = ["rsseg.cli.__main__"]  # importing it runs the CLI

html_theme = "alabaster"
html_title = f"rsseg {release}"
html_static_path: list[str] = []
# names re-exported by a package (rsseg.tiling.PredictOptions) resolve to two targets
suppress_warnings = ["ref.python"]
