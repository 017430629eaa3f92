"""``python tests/rsseg_with_test_models.py ARGS``: the rsseg CLI with the test models registered.

Used where a test needs a real separate process (SIGKILL, torch.distributed ranks).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import conftest  # noqa: F401 - registers the test models

from rsseg.cli import main

if __name__ == "__main__":
    main(sys.argv[1:])
