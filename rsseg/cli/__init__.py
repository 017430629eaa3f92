"""The ``rsseg`` command line: subcommands live in their own modules and load lazily."""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

import click

from rsseg import __version__
from rsseg.cli.flags import cli_message, to_flags
from rsseg.errors import RssegError, first_line
from rsseg.interrupts import Terminated, install_stop_handlers

# command name -> "module:attribute"
COMMANDS = {
    "predict": "rsseg.cli.predict:predict",
    "vectorize": "rsseg.cli.vectorize:vectorize",
    "train": "rsseg.cli.train:train",
    "evaluate": "rsseg.cli.evaluate:evaluate",
    "prepare": "rsseg.cli.prepare:prepare",
    "models": "rsseg.cli.models:models",
    "export": "rsseg.cli.export:export",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used (keeps ``--help`` fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rsseg")
def cli() -> None:
    """rsseg: semantic segmentation of very large remote-sensing scenes."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Warnings as one ``Warning: ...`` line (no file, line number or category)."""
    text = first_line(message) if str(message).strip() else category.__name__
    click.echo(f"Warning: {to_flags(text)}", err=True)


def _one_line_warnings() -> None:
    """Route Python warnings and GDAL/pyogrio log records to one-line ``Warning:`` messages."""
    warnings.showwarning = _show_warning
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("Warning: %(message)s"))
    for name in ("rasterio", "pyogrio", "fiona"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.propagate = False


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 1.

    SIGTERM and SIGHUP unwind like Ctrl-C (removing unfinished outputs), then exit 143 / 129.
    """
    install_stop_handlers()
    _one_line_warnings()
    try:
        cli.main(args=argv, prog_name="rsseg", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted; unfinished outputs removed.", err=True)
        sys.exit(130)
    except Terminated as stop:
        click.echo(f"Stopped by {stop}; unfinished outputs removed.", err=True)
        sys.exit(stop.exit_code)
    except click.ClickException as err:  # usage errors too: one line, like every other error
        click.echo(f"Error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except RssegError as err:
        click.echo(f"Error: {cli_message(err)}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
