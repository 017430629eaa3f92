"""The exception types the CLI turns into a one-line error and a non-zero exit."""

from __future__ import annotations


class RssegError(Exception):
    """A user-facing error: the message names the file and what is wrong with it."""


class OptionError(RssegError):
    """A parameter value the library refuses: ``option`` is its keyword (``tile``, ``tta``, ...).

    The library message reads ``tile=100: must be a multiple of 32``; the CLI, which knows the
    flag, reports ``--tile 100: must be a multiple of 32``.
    """

    def __init__(self, option: str, value: object, problem: str):
        super().__init__(f"{option}={value}: {problem}")
        self.option, self.value, self.problem = option, value, problem

    def as_flag(self) -> str:
        """The message with the command-line spelling of the option."""
        return f"--{self.option.replace('_', '-')} {self.value}: {self.problem}"
