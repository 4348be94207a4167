"""``python -m cnnkit`` is the same as the ``cnnkit`` command."""

import sys

from cnnkit.cli import main

sys.exit(main())
