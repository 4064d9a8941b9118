"""``python -m sharpjac``: see :mod:`sharpjac.cli`."""

import sys

from .cli import main

sys.exit(main())
