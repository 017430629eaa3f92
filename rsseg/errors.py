"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class RssegError(Exception):
    """A user-facing error: the message names the file and what is wrong with it."""
