"""Click parameter types shared by several subcommands."""

from __future__ import annotations

import click


class IntList(click.ParamType):
    """A comma-separated list of integers, e.g. ``3,2,1``."""

    name = "LIST"

    def convert(self, value, param, ctx):  # noqa: ANN001 - click's signature
        if isinstance(value, list):
            return value
        try:
            return [int(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
