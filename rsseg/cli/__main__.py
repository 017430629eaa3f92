"""Allow ``python -m rsseg.cli`` (e.g. ``torchrun -m rsseg.cli train ...``)."""

from rsseg.cli import main

main()
