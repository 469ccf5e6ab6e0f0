"""``python -m accelsim``: the same command line as the ``accelsim`` script (accelsim.cli)."""

import sys

from .cli import main

sys.exit(main())
