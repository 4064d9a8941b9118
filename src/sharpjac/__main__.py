"""``python -m sharpjac``: see :mod:`sharpjac.cli`."""

import os
import sys

from .cli import main

code = main()
try:
    sys.stdout.flush()
except BrokenPipeError:  # the reader went away (``... | head -1``): exit quietly, as SIGPIPE would
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 141
sys.exit(code)
