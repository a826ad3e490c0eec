"""``python -m stackjax`` runs the command line (see `stackjax.cli`)."""

import sys

from .cli import main

sys.exit(main())
