"""The bridge between ``make`` and ``python -m sharpjac.publish``: make variables arrive as data.

The Makefile never splices ``NB``, ``PRESET``, ``SEED``, ``PARAMS``, ``JOBS`` or ``RESET`` into a
shell command. It exports their raw text (``$(value ...)``, so make expands nothing in them either)
as ``SHARPJAC_MAKE_<NAME>`` environment variables, and ``SHARPJAC_MAKE_GIVEN`` names the ones the
user set. This script (standard library only, so a refusal costs no import of torch) validates each
one and then *execs* ``python -m sharpjac.publish`` with an argument list: no shell ever sees a
value, so ``;``, quotes, ``$(...)`` and backticks are plain characters of a value that is refused
(or, inside ``PARAMS``, handed to :func:`sharpjac.publish.parse_params` as text).

Run as a file (``python src/sharpjac/_make_args.py notebooks|chapter``), not as a module. With
``SHARPJAC_MAKE_PRINT=1`` it prints the argument list instead of running it (used by the tests).
"""

from __future__ import annotations

import os
import re
import shlex
import sys

PREFIX = "SHARPJAC_MAKE_"
PRESETS = ("smoke", "quick", "paper")  # sharpjac.publish.PRESETS (a test checks they agree)
_CHAPTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_RESET = {"1": True, "yes": True, "true": True, "": False, "0": False, "no": False, "false": False}


class MakeArgError(ValueError):
    """A make variable that cannot be used as given."""


def _show(value: str) -> str:
    return repr(value)


def arguments(target: str, env: dict[str, str]) -> list[str]:  # noqa: C901 - one independent check per make variable, in a row
    """The ``sharpjac.publish`` argument list for ``make <target>``; MakeArgError (one line) if a
    variable cannot be used exactly as given."""
    given = set(env.get(PREFIX + "GIVEN", "").split())

    def get(name: str) -> str | None:
        return env.get(PREFIX + name, "") if name in given else None

    args = ["notebooks"]
    preset = get("PRESET")
    if preset is not None:
        if preset not in PRESETS:
            raise MakeArgError(f"PRESET={_show(preset)} is invalid; accepted: one of {', '.join(PRESETS)}")
        args += ["--preset", preset]
    seed = get("SEED")
    if seed is not None:
        if not re.fullmatch(r"[0-9]{1,10}", seed) or int(seed) >= 2**32:
            raise MakeArgError(f"SEED={_show(seed)} is invalid; accepted: an integer in [0, 2**32), e.g. SEED=1")
        args += ["--seed", str(int(seed))]
    params = get("PARAMS")
    if params is not None:
        try:
            words = shlex.split(params)
        except ValueError as e:
            raise MakeArgError(
                f"PARAMS={_show(params)} cannot be read ({e}); accepted: words NAME=VALUE, e.g. "
                'PARAMS="n_seeds=5 method=kendall"'
            ) from None
        for word in words:
            name, sep, _ = word.partition("=")
            if not sep or not name.isidentifier():
                raise MakeArgError(
                    f"PARAMS entry {_show(word)} is not NAME=VALUE; accepted: words like n_seeds=5 method=kendall"
                )
        args += ["--params", params]
    reset = env.get(PREFIX + "RESET", "")
    if reset.strip().lower() not in _RESET:
        raise MakeArgError(f"RESET={_show(reset)} is invalid; accepted: RESET=1 (forget stored parameters) or unset")
    if _RESET[reset.strip().lower()]:
        args.append("--reset")
    jobs = get("JOBS")
    if jobs is not None:
        if not re.fullmatch(r"[1-9][0-9]{0,3}", jobs):
            raise MakeArgError(f"JOBS={_show(jobs)} is invalid; accepted: a positive integer, e.g. JOBS=2")
        args += ["--jobs", jobs]
    if target == "chapter":
        nb = env.get(PREFIX + "NB", "")
        names = nb.split()
        if not names:
            raise MakeArgError(
                "NB is not set; usage: make chapter NB=<name> [PRESET=quick] [SEED=0] "
                '[PARAMS="n_seeds=5"] (chapters: python -m sharpjac.publish list)'
            )
        for name in names:
            if not _CHAPTER_RE.match(name):
                raise MakeArgError(
                    f"NB={_show(nb)} is not a chapter name; accepted: the stem of a notebooks/<name>.md "
                    "(letters, digits, '_'; list them with python -m sharpjac.publish list)"
                )
        args += ["--only", *names]
    elif target != "notebooks":
        raise MakeArgError(f"target={_show(target)} is invalid; accepted: notebooks or chapter")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("error: usage: python src/sharpjac/_make_args.py notebooks|chapter", file=sys.stderr)
        return 2
    try:
        args = arguments(argv[0], dict(os.environ))
    except MakeArgError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "sharpjac.publish", *args]
    if os.environ.get(PREFIX + "PRINT"):
        print(shlex.join(command[1:]))
        return 0
    sys.stdout.flush()
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    raise SystemExit(main())
