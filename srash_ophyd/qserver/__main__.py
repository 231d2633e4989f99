"""``python -m srash_ophyd.qserver``: start the RE manager with the SRASH profile."""

import sys

from .launch import main

sys.exit(main())
