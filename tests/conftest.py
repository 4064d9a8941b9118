"""Shared test fixtures."""

from __future__ import annotations

import pytest
import torch


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
