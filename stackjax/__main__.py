"""``python -m stackjax``: the command line (see `stackjax.cli`)."""

import sys

from .cli import run

sys.exit(run())
