"""Shared test fixtures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from sharpjac import publish, request_log

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = publish.chapters(ROOT)
SMOKE = {"preset": "smoke", "seed": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread per test module, restored afterwards.

    The problems in the tests are tiny (float64, a few hundred parameters): several threads only
    oversubscribe a shared machine (about 10x slower there), and one thread also fixes the
    reduction order of every module's computations.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _copy_sources(target: Path) -> Path:
    for name in ["_config.yml", "_toc.yml"]:
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "book", target / "book")
    (target / "notebooks").mkdir()
    for source in (ROOT / "notebooks").glob("*.md"):
        shutil.copy(source, target / "notebooks" / source.name)
    return target


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """Execute every chapter at the smoke preset and build the book, once per session."""
    root = _copy_sources(tmp_path_factory.mktemp("book"))
    old = os.environ.get("SHARPJAC_CACHE")
    os.environ["SHARPJAC_CACHE"] = str(tmp_path_factory.mktemp("runs"))
    (root / "requests").mkdir()
    results = []
    try:
        for plan in publish.plan_chapters(root, CHAPTERS, SMOKE):
            # each chapter's requests in its own log (read by the pre-flight test below)
            os.environ[request_log.ENV] = str(root / "requests" / f"{plan.name}.jsonl")
            results.append(publish.execute_chapter(root, plan.name, plan.parameters))
    finally:
        os.environ.pop(request_log.ENV, None)
        if old is None:
            os.environ.pop("SHARPJAC_CACHE", None)
        else:
            os.environ["SHARPJAC_CACHE"] = old
    publish.build_book(root)
    return root, {r.name: r for r in results}
