"""Library messages in command-line words: parameter names become the flags that set them.

Library code names a parameter in backticks, alone (```overwrite```) or with a value
(```tile=256```); :func:`to_flags` writes them as ``--overwrite`` and ``--tile 256``. Names
not spelt ``--name-with-dashes`` on the command line are listed in :data:`ALIASES`.
"""

from __future__ import annotations

import re

from rsseg.errors import OptionError, RssegError

ALIASES = {"out": "-o", "output": "-o", "driver": "--format", "label_sets": "--label-set"}
_MENTION = re.compile(r"`([a-z][a-z0-9_]*)(?:=([^`\s]*))?`")


def flag(name: str) -> str:
    """The flag that sets parameter ``name``."""
    return ALIASES.get(name, "--" + name.replace("_", "-"))


def to_flags(message: str) -> str:
    """``message`` with each parameter mention (```name``` or ```name=value```) as its flag."""
    def spell(match: re.Match) -> str:
        name, value = match.groups()
        if value is None or value == "True":
            return flag(name)
        return f"{flag(name)} {value}"
    return _MENTION.sub(spell, message)


def cli_message(err: RssegError) -> str:
    """The one-line message of a library error as the command line shows it."""
    if isinstance(err, OptionError):
        return f"{flag(err.option)} {err.value}: {to_flags(err.problem)}"
    return to_flags(str(err))
