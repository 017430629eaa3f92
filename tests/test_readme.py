"""Every command in README.md and the docs pages is checked against the real CLI; the README's cheap ones are run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from rsseg.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = {"README.md": README} | {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / "docs").rglob("*.md"))
                                 if "_build" not in p.parts}


def readme_commands(text: str = README) -> list[list[str]]:
    """Shell commands of a page's bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                commands.append(tokens)
    return commands


def all_commands() -> list[tuple[str, list[str]]]:
    """(page, command) for every bash command of the README and the docs pages."""
    return [(page, tokens) for page, text in PAGES.items() for tokens in readme_commands(text)]


def rsseg_invocations() -> list[tuple[str, list[str]]]:
    """(page, argument list given to ``rsseg``), also behind ``torchrun --no-python``."""
    return [(page, tokens[tokens.index("rsseg") + 1:]) for page, tokens in all_commands() if "rsseg" in tokens]


def resolve(args: list[str]) -> tuple[click.Command, list[str]]:
    """The (sub)command an argument list reaches, and the arguments left for it."""
    command, ctx = cli, click.Context(cli)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        command = command.get_command(ctx, args[0])
        assert command is not None, f"unknown rsseg command {args[0]!r}"
        args = args[1:]
    return command, args


def test_readme_has_the_two_commands_first():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    assert "make demo" in first_block and "make test" in first_block
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in {t[1] for _, t in all_commands() if t[0] == "make"}:
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no target {target}"


def test_docs_pages_have_commands():
    """The docs pages are read (a renamed folder must not silently empty the checks below)."""
    pages = {page for page, _ in rsseg_invocations()}
    assert "README.md" in pages and "docs/commands/predict.md" in pages and len(pages) >= 8


@pytest.mark.parametrize(("page", "args"), rsseg_invocations(),
                         ids=lambda a: a if isinstance(a, str) else " ".join(a)[:60])
def test_readme_rsseg_commands_use_real_options(page, args):
    command, rest = resolve(args)
    known = {"--help", "-h"}
    for param in command.params:
        known.update(param.opts)
        known.update(param.secondary_opts)
    for token in rest:
        if token.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", token):
            assert token.split("=")[0] in known, f"{page}: rsseg {' '.join(args)}: no option {token}"


def test_readme_scripts_exist_and_take_their_options():
    seen = 0
    for page, tokens in all_commands():
        scripts = [t for t in tokens if t.startswith("scripts/")]
        for script in scripts:
            path = ROOT / script
            assert path.is_file(), f"{page} names missing {script}"
            source = path.read_text()
            for token in tokens[tokens.index(script) + 1:]:
                if token.startswith("--"):
                    assert f'"{token.split("=")[0]}"' in source, f"{script} has no option {token}"
            seen += 1
    assert seen >= 4


def test_readme_cheap_commands_run(tmp_path):
    """The commands on the bundled real orthophoto run as written (in a scratch folder)."""
    (tmp_path / "data_samples").symlink_to(ROOT / "data_samples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cheap = [t for t in readme_commands() if t[0] == "rsseg" and any("OSBS_029" in a for a in t)]
    assert len(cheap) >= 2
    for tokens in cheap:
        result = subprocess.run(tokens, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{' '.join(tokens)}\n{result.stderr[-2000:]}"
