"""``python -m srash_ophyd.cli``: the ``srash`` command line."""

import sys

from . import main

sys.exit(main())
