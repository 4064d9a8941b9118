"""``python -m sharpjac.publish``: the command line of :mod:`sharpjac.publish.commands`."""

from .commands import main

raise SystemExit(main())
