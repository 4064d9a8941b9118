"""The request log: every run and study an experiment asks for, one line each.

When ``$SHARPJAC_REQUEST_LOG`` names a file, the experiments layer appends one JSON line per request
(whether the run is then trained or read from the store):

* ``{"kind": "run", "key": <run key>, "experiment": <name>}`` for every grid point of
  :func:`~sharpjac.experiments.base.run_experiment`, every run of a study's
  :meth:`~sharpjac.experiments.base.StudyConfig.trains` and every
  :func:`~sharpjac.experiments.base.trained_run`;
* ``{"kind": "study", "key": <study folder name>, "experiment": <name>}`` for every
  :func:`~sharpjac.experiments.base.run_study`.

A line is written with one ``write`` on a file opened with ``O_APPEND``, so lines from concurrent
processes (parallel chapters, a kernel and its parent) never interleave. The log is how a test checks
that the paper pre-flight (``python -m sharpjac.publish missing``) lists exactly the runs an executed
chapter asks for.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "requests.jsonl")
>>> os.environ[ENV] = path
>>> record("run", "ab" * 32, "demo")
>>> del os.environ[ENV]
>>> [r["kind"] for r in read(path)], requested_keys(path, "run") == {"ab" * 32}
(['run'], True)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "SHARPJAC_REQUEST_LOG"
KINDS = ("run", "study")

__all__ = ["ENV", "KINDS", "record", "read", "requested_keys"]


def record(kind: str, key: str, experiment: str = "") -> None:
    """Append one request to ``$SHARPJAC_REQUEST_LOG`` (nothing when it is unset or empty)."""
    path = os.environ.get(ENV, "")
    if not path:
        return
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; accepted: {list(KINDS)}")
    line = json.dumps({"kind": kind, "key": str(key), "experiment": experiment}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read(path: str | os.PathLike) -> list[dict]:
    """The requests in a log, in order (an absent file: none)."""
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def requested_keys(path: str | os.PathLike, kind: str = "run") -> set[str]:
    """The distinct keys of ``kind`` in a log."""
    return {r["key"] for r in read(path) if r["kind"] == kind}
