"""``python -m dagrun.cli``: the ``dagrun`` command."""

import sys

from dagrun.cli.main import main

sys.exit(main())
